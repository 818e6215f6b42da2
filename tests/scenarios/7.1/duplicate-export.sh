# Target modules export their functions (EXPORT_SYMBOL_GPL, as the
# generator for real kernels writes them). A second module exporting f1 is
# refused by the module loader -- found by klpsim fuzz on 6.12.
start_test 'duplicate exported symbol'
load_mod test_klp_exp_a
load_failing_mod test_klp_exp_b
unload_mod test_klp_exp_a
load_mod test_klp_exp_b
grep . /proc/test_klp_exp_b/f1 > /dev/kmsg
unload_mod test_klp_exp_b
check_result "% insmod test_modules/test_klp_exp_a.ko
test_klp_exp_a: test_klp_exp_a_init
% insmod test_modules/test_klp_exp_b.ko
test_klp_exp_b: exports duplicate symbol f1 (owned by test_klp_exp_a)
insmod: ERROR: could not insert module test_modules/test_klp_exp_b.ko: Invalid module format
% rmmod test_klp_exp_a
test_klp_exp_a: test_klp_exp_a_exit
% insmod test_modules/test_klp_exp_b.ko
test_klp_exp_b: test_klp_exp_b_init
test_klp_exp_b: f1: original output
% rmmod test_klp_exp_b
test_klp_exp_b: test_klp_exp_b_exit"
