# Functions a livepatch cannot patch: one ftrace has no call site for
# (klp_patch_func(): no ftrace location; the enable is cancelled), and a
# static name kallsyms has twice, without old_sympos (klp_find_object_symbol():
# vmlinux is the NULL object name, printed "(null)"). old_sympos 2 picks one.
start_test 'functions a livepatch cannot patch'
load_failing_mod test_klp_notrace
load_failing_mod test_klp_ambiguous
load_lp test_klp_sympos2
disable_lp test_klp_sympos2
unload_lp test_klp_sympos2
check_result "% insmod test_modules/test_klp_notrace.ko
livepatch: enabling patch 'test_klp_notrace'
livepatch: 'test_klp_notrace': initializing patching transition
livepatch: failed to find location for function '__schedule'
livepatch: failed to patch object 'vmlinux'
livepatch: failed to enable patch 'test_klp_notrace'
livepatch: 'test_klp_notrace': canceling patching transition, going to unpatch
livepatch: 'test_klp_notrace': completing unpatching transition
livepatch: 'test_klp_notrace': unpatching complete
insmod: ERROR: could not insert module test_modules/test_klp_notrace.ko: Invalid parameters
% insmod test_modules/test_klp_ambiguous.ko
livepatch: unresolvable ambiguity for symbol 'init_once' in object '(null)'
insmod: ERROR: could not insert module test_modules/test_klp_ambiguous.ko: Invalid parameters
% insmod test_modules/test_klp_sympos2.ko
livepatch: enabling patch 'test_klp_sympos2'
livepatch: 'test_klp_sympos2': initializing patching transition
livepatch: 'test_klp_sympos2': starting patching transition
livepatch: 'test_klp_sympos2': completing patching transition
livepatch: 'test_klp_sympos2': patching complete
% echo 0 > /sys/kernel/livepatch/test_klp_sympos2/enabled
livepatch: 'test_klp_sympos2': initializing unpatching transition
livepatch: 'test_klp_sympos2': starting unpatching transition
livepatch: 'test_klp_sympos2': completing unpatching transition
livepatch: 'test_klp_sympos2': unpatching complete
% rmmod test_klp_sympos2"
