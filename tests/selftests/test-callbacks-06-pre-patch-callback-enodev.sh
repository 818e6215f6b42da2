# test-callbacks.sh, case 6: "pre-patch callback -ENODEV"
start_test 'pre-patch callback -ENODEV'
load_mod test_klp_callbacks_mod
load_failing_mod test_klp_callbacks_demo pre_patch_ret=-19
unload_mod test_klp_callbacks_mod
check_result "% insmod test_modules/test_klp_callbacks_mod.ko
test_klp_callbacks_mod: test_klp_callbacks_mod_init
% insmod test_modules/test_klp_callbacks_demo.ko pre_patch_ret=-19
livepatch: enabling patch 'test_klp_callbacks_demo'
livepatch: 'test_klp_callbacks_demo': initializing patching transition
test_klp_callbacks_demo: pre_patch_callback: vmlinux
livepatch: pre-patch callback failed for object 'vmlinux'
livepatch: failed to enable patch 'test_klp_callbacks_demo'
livepatch: 'test_klp_callbacks_demo': canceling patching transition, going to unpatch
livepatch: 'test_klp_callbacks_demo': completing unpatching transition
livepatch: 'test_klp_callbacks_demo': unpatching complete
insmod: ERROR: could not insert module test_modules/test_klp_callbacks_demo.ko: No such device
% rmmod test_klp_callbacks_mod
test_klp_callbacks_mod: test_klp_callbacks_mod_exit"
