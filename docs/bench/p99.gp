set terminal svg size 800,480 dynamic enhanced font 'sans,12' background rgb 'white'
set grid
set key top left
set output 'p99.svg'
set title 'NTP: p99 latency'
set xlabel 'offered requests/s'
set ylabel 'µs'
set logscale y
plot 'data/gnomond.dat' using 1:5 with linespoints title 'gnomond', 'data/chronyd.dat' using 1:5 with linespoints title 'chronyd', 'data/ntpd.dat' using 1:5 with linespoints title 'ntpd', 'data/chronyd-4m.dat' using 1:5 with linespoints title 'chronyd-4m', 'data/ntpd-4m.dat' using 1:5 with linespoints title 'ntpd-4m', 'data/floor.dat' using 1:5 with linespoints title 'floor'
