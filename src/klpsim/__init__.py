"""klpsim: an executable model of Linux kernel livepatching."""
