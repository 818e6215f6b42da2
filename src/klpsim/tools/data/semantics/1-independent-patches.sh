# Two patches of different functions: a (set 0, no replace), b (set 1, no replace).
load_lp a
load_lp b
