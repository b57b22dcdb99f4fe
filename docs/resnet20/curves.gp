# Drawn by bnlab's curves; run `gnuplot THIS_FILE` to draw it again.
$run_0_0 << EOD
# docs/resnet20/resnet20-seed1.jsonl
1 0.8728 0.513225085
2 0.8919 0.281342753
3 0.8872 0.25168279
4 0.9046 0.233165107
5 0.8926 0.22324713
6 0.9109 0.205760639
7 0.9075 0.193634222
8 0.9091 0.174776803
9 0.9237 0.159079403
10 0.9189 0.138036473
11 0.9172 0.113957448
12 0.9187 0.0840303311
13 0.9262 0.0510111808
14 0.9336 0.0280920404
15 0.9356 0.0175242605
EOD
$run_0_1 << EOD
# docs/resnet20/resnet20-seed2.jsonl
1 0.8685 0.506696922
2 0.8826 0.281528215
3 0.8999 0.250890089
4 0.8784 0.229053864
5 0.9141 0.215248158
6 0.8914 0.198615223
7 0.9023 0.18751736
8 0.9095 0.173071376
9 0.9108 0.152033531
10 0.921 0.132460885
11 0.9228 0.106350465
12 0.9225 0.0764283417
13 0.93 0.0452258317
14 0.9324 0.0231408038
15 0.9332 0.0141356573
EOD
$mean_0 << EOD
1 0.87065 0.509961003
2 0.88725 0.281435484
3 0.89355 0.251286439
4 0.8915 0.231109486
5 0.90335 0.219247644
6 0.90115 0.202187931
7 0.9049 0.190575791
8 0.9093 0.173924089
9 0.91725 0.155556467
10 0.91995 0.135248679
11 0.92 0.110153957
12 0.9206 0.0802293364
13 0.9281 0.0481185062
14 0.933 0.0256164221
15 0.9344 0.0158299589
EOD
set terminal svg size 1200,480 dynamic font 'Helvetica,13' background rgb 'white'
set output 'docs/resnet20/curves.svg'
set termoption noenhanced
set multiplot layout 1,2 title 'ResNet-20 (resnet20 preset), Fashion-MNIST, seeds 1 and 2'
set grid
set xtics 1
set key below
set title 'Test accuracy after each epoch'
set ylabel 'accuracy'
set arrow from graph 0, first 0.93 to graph 1, first 0.93 nohead dt 2 lw 1.5 lc rgb '#666666'
set label 'target 0.93' at graph 0.02, first 0.93 offset 0,0.6 tc rgb '#666666'
plot $run_0_0 using 1:2 with lines lw 1 lc rgb '#701f77b4' notitle, $run_0_1 using 1:2 with lines lw 1 lc rgb '#701f77b4' notitle, $mean_0 using 1:2 with linespoints lw 3 pt 7 ps 0.6 lc rgb '#1f77b4' title 'hidden= act=relu bn=on (mean of 2)'
unset arrow
unset label
set title 'Training loss per epoch (mean over its batches)'
set ylabel 'loss'
plot $run_0_0 using 1:3 with lines lw 1 lc rgb '#701f77b4' notitle, $run_0_1 using 1:3 with lines lw 1 lc rgb '#701f77b4' notitle, $mean_0 using 1:3 with linespoints lw 3 pt 7 ps 0.6 lc rgb '#1f77b4' title 'hidden= act=relu bn=on (mean of 2)'
unset multiplot
set terminal pngcairo size 1200,480 font 'Helvetica,11' background rgb 'white'
set output 'docs/resnet20/curves.png'
set termoption noenhanced
set multiplot layout 1,2 title 'ResNet-20 (resnet20 preset), Fashion-MNIST, seeds 1 and 2'
set grid
set xtics 1
set key below
set title 'Test accuracy after each epoch'
set ylabel 'accuracy'
set arrow from graph 0, first 0.93 to graph 1, first 0.93 nohead dt 2 lw 1.5 lc rgb '#666666'
set label 'target 0.93' at graph 0.02, first 0.93 offset 0,0.6 tc rgb '#666666'
plot $run_0_0 using 1:2 with lines lw 1 lc rgb '#701f77b4' notitle, $run_0_1 using 1:2 with lines lw 1 lc rgb '#701f77b4' notitle, $mean_0 using 1:2 with linespoints lw 3 pt 7 ps 0.6 lc rgb '#1f77b4' title 'hidden= act=relu bn=on (mean of 2)'
unset arrow
unset label
set title 'Training loss per epoch (mean over its batches)'
set ylabel 'loss'
plot $run_0_0 using 1:3 with lines lw 1 lc rgb '#701f77b4' notitle, $run_0_1 using 1:3 with lines lw 1 lc rgb '#701f77b4' notitle, $mean_0 using 1:3 with linespoints lw 3 pt 7 ps 0.6 lc rgb '#1f77b4' title 'hidden= act=relu bn=on (mean of 2)'
unset multiplot
set output
