# kmod's wording for init_module() errors: insmod's mod_strerror() knows
# ENOEXEC, ENOENT, ESRCH and EINVAL and leaves the rest to strerror(), so a
# second load of a live module ends in "File exists"; modprobe skips a module
# that is already live, and says "Invalid parameters" only through strerror().
start_test 'kmod wording: a second load, a bad parameter'
load_lp test_klp_livepatch
insmod test_klp_livepatch
modprobe test_klp_livepatch
disable_lp test_klp_livepatch
unload_lp test_klp_livepatch
insmod test_klp_callbacks_busy block_transition=maybe
modprobe test_klp_callbacks_busy block_transition=maybe
