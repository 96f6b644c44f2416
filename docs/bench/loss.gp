set terminal svg size 800,480 dynamic enhanced font 'sans,12' background rgb 'white'
set grid
set key top left
set output 'loss.svg'
set title 'NTP: loss against offered load'
set xlabel 'offered requests/s'
set ylabel 'loss (%)'
plot 'data/gnomond.dat' using 1:3 with linespoints title 'gnomond', 'data/chronyd.dat' using 1:3 with linespoints title 'chronyd', 'data/ntpd.dat' using 1:3 with linespoints title 'ntpd', 'data/chronyd-4m.dat' using 1:3 with linespoints title 'chronyd-4m', 'data/ntpd-4m.dat' using 1:3 with linespoints title 'ntpd-4m', 'data/floor.dat' using 1:3 with linespoints title 'floor'
