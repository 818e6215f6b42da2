# overlap (set 1) patches the function a (set 0) already patches.
load_lp a
insmod test_modules/overlap.ko
