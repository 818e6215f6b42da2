#!/bin/sh
# klpsim guest /init: mount the pseudo file systems, then run the agent.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
/usr/sbin/depmod -a 2>/dev/null
/bin/sh /klp/agent.sh
reboot -f
