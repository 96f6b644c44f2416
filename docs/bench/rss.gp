set terminal svg size 800,480 dynamic enhanced font 'sans,12' background rgb 'white'
set grid
set key top left
set output 'rss.svg'
set title 'RSS over time (serving, then as clients)'
set xlabel 's since start'
set ylabel 'MiB'
set datafile separator ','
set key outside right
plot 'data/memory.csv' using 1:(strcol(3) eq 'chronyd' ? $4/1024 : 1/0) with lines title 'chronyd', 'data/memory.csv' using 1:(strcol(3) eq 'chronyd-4m' ? $4/1024 : 1/0) with lines title 'chronyd-4m', 'data/memory.csv' using 1:(strcol(3) eq 'chronyd-client' ? $4/1024 : 1/0) with lines title 'chronyd-client', 'data/memory.csv' using 1:(strcol(3) eq 'floor' ? $4/1024 : 1/0) with lines title 'floor', 'data/memory.csv' using 1:(strcol(3) eq 'gnomond' ? $4/1024 : 1/0) with lines title 'gnomond', 'data/memory.csv' using 1:(strcol(3) eq 'gnomond-client' ? $4/1024 : 1/0) with lines title 'gnomond-client', 'data/memory.csv' using 1:(strcol(3) eq 'ntpd' ? $4/1024 : 1/0) with lines title 'ntpd', 'data/memory.csv' using 1:(strcol(3) eq 'ntpd-4m' ? $4/1024 : 1/0) with lines title 'ntpd-4m', 'data/memory.csv' using 1:(strcol(3) eq 'ntpd-client' ? $4/1024 : 1/0) with lines title 'ntpd-client'
