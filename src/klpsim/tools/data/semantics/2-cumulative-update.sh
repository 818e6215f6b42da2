# a and b are in; cum is a cumulative update of a (replace / set 0).
load_lp a
load_lp b
load_lp cum
loop_until test ! -e /sys/kernel/livepatch/a
