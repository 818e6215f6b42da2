# Found by klpsim fuzz --kernel 6.12 --seed 1012 (fuzz_1012_46). test_klp_state3
# takes over state 1 from a patch that stored no data in it, and replaces
# that patch. Disabled, its pre_unpatch callback finds no previous state and
# restores console_loglevel from its own state's data: a NULL dereference.
# The oops kills the script's shell (echo is a builtin) with klp_mutex held.
start_test 'a state taken over from a patch that stored no data'
load_lp lp_state_nodata
load_lp test_klp_state3
disable_lp test_klp_state3
unload_lp test_klp_state3
