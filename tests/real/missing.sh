# A livepatch of a function the kernel does not have: the kernel refuses it.
load_failing_mod klpsim_lp_missing
log 'klpsim_lp_missing: done'
