# test-livepatch.sh, case 4: "module function patching"
start_test 'module function patching'
load_mod test_klp_mod_target
cat /proc/test_klp_mod_target
load_lp test_klp_mod_patch
cat /proc/test_klp_mod_target
disable_lp test_klp_mod_patch
unload_lp test_klp_mod_patch
cat /proc/test_klp_mod_target
unload_mod test_klp_mod_target
check_result "% insmod test_modules/test_klp_mod_target.ko
test_klp_mod_target: test_klp_mod_target_init
% insmod test_modules/test_klp_mod_patch.ko
livepatch: enabling patch 'test_klp_mod_patch'
livepatch: 'test_klp_mod_patch': initializing patching transition
livepatch: 'test_klp_mod_patch': starting patching transition
livepatch: 'test_klp_mod_patch': completing patching transition
livepatch: 'test_klp_mod_patch': patching complete
% echo 0 > /sys/kernel/livepatch/test_klp_mod_patch/enabled
livepatch: 'test_klp_mod_patch': initializing unpatching transition
livepatch: 'test_klp_mod_patch': starting unpatching transition
livepatch: 'test_klp_mod_patch': completing unpatching transition
livepatch: 'test_klp_mod_patch': unpatching complete
% rmmod test_klp_mod_patch
% rmmod test_klp_mod_target
test_klp_mod_target: test_klp_mod_target_exit"
