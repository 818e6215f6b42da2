# lp1 patches funcA; lp2 (replaceable) funcA and funcB; lp3 (replace) funcB.
load_lp lp1
insmod test_modules/lp2.ko
sleep 1
insmod test_modules/lp3.ko
sleep 2
