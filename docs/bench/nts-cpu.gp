set terminal svg size 800,480 dynamic enhanced font 'sans,12' background rgb 'white'
set grid
set key top left
set output 'nts-cpu.svg'
set title 'NTS: server CPU per authenticated answer'
set xlabel 'offered requests/s'
set ylabel 'µs per answer'
set yrange [0:*]
plot 'data/nts-gnomond.dat' using 1:4 with linespoints title 'gnomond', 'data/nts-chronyd.dat' using 1:4 with linespoints title 'chronyd', 'data/nts-ntpd.dat' using 1:4 with linespoints title 'ntpd'
