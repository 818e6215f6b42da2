# st1 (set 0) and st2 (set 1) both use state id 5.
load_lp st1
insmod test_modules/st2.ko
