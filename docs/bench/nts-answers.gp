set terminal svg size 800,480 dynamic enhanced font 'sans,12' background rgb 'white'
set grid
set key top left
set output 'nts-answers.svg'
set title 'NTS: authenticated answers/s against offered load'
set xlabel 'offered requests/s'
set ylabel 'answers/s'
plot 'data/nts-gnomond.dat' using 1:2 with linespoints title 'gnomond', 'data/nts-chronyd.dat' using 1:2 with linespoints title 'chronyd', 'data/nts-ntpd.dat' using 1:2 with linespoints title 'ntpd', x with lines dashtype 2 title 'offered'
