"""klpsim: an executable model of Linux kernel livepatching."""

__version__ = "0.1.0"
