# klpsim guest agent: a request loop on the second serial port (/dev/ttyS1).
# The kernel console stays on ttyS0, so kernel messages never mix with this
# channel.  The port is put in raw mode; every request is one line:
#
#   PUT <path> <bytes>   the next <bytes> bytes are written to <path>
#   RUN <command...>     bash runs the command, stdin from /dev/null
#   BYE                  end the guest (a reset: QEMU has -no-reboot)
#
# and every answer is the line "KLP-RC <status> <bytes>", then <bytes> bytes
# of output (stdout and stderr of RUN; nothing for PUT).
exec 0</dev/ttyS1 1>/dev/ttyS1 2>&1
stty raw -echo
echo "KLP-READY $(uname -r)"
while IFS= read -r line; do
	verb=${line%% *}
	rest=${line#* }
	case $verb in
	PUT)
		set -- $rest
		head -c "$2" > "$1"
		rc=$?
		: > /tmp/klp.out
		;;
	RUN)
		bash -c "$rest" < /dev/null > /tmp/klp.out 2>&1
		rc=$?
		;;
	BYE)
		reboot -f  # QEMU runs with -no-reboot: a reset ends it, with or without ACPI
		;;
	*)
		echo "unknown request: $verb" > /tmp/klp.out
		rc=127
		;;
	esac
	echo "KLP-RC $rc $(wc -c < /tmp/klp.out)"
	cat /tmp/klp.out
done
