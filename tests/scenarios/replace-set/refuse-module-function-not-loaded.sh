# Conflicts count for module objects whether the module is loaded or not.
start_test 'refuse a module function of another set'
load_lp lp_mod_0
load_failing_mod lp_mod_2
load_mod tgt
check_sysfs_value lp_mod_0 tgt/patched 1
unload_mod tgt
disable_lp lp_mod_0
unload_lp lp_mod_0
load_lp lp_mod_2
disable_lp lp_mod_2
unload_lp lp_mod_2
check_result "livepatch: enabling patch 'lp_mod_0'
livepatch: 'lp_mod_0': initializing patching transition
livepatch: 'lp_mod_0': starting patching transition
livepatch: 'lp_mod_0': completing patching transition
livepatch: 'lp_mod_0': patching complete
livepatch: Livepatch patch (lp_mod_2) is not compatible with the already installed livepatches.
livepatch: applying patch 'lp_mod_0' to loading module 'tgt'
livepatch: reverting patch 'lp_mod_0' on unloading module 'tgt'
livepatch: 'lp_mod_0': initializing unpatching transition
livepatch: 'lp_mod_0': starting unpatching transition
livepatch: 'lp_mod_0': completing unpatching transition
livepatch: 'lp_mod_0': unpatching complete
livepatch: enabling patch 'lp_mod_2'
livepatch: 'lp_mod_2': initializing patching transition
livepatch: 'lp_mod_2': starting patching transition
livepatch: 'lp_mod_2': completing patching transition
livepatch: 'lp_mod_2': patching complete
livepatch: 'lp_mod_2': initializing unpatching transition
livepatch: 'lp_mod_2': starting unpatching transition
livepatch: 'lp_mod_2': completing unpatching transition
livepatch: 'lp_mod_2': unpatching complete"
