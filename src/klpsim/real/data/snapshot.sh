#!/bin/sh
# klpsim snapshot collector, POSIX sh (dash, busybox ash).  klpsim @KLPSIM_VERSION@
#
#   sh klpsim-snapshot.sh [-o FILE.tar.gz | -o -] [--ko DIR] [--force]
#
# Reads, never writes, what a livepatch planner needs from this host:
# /sys/kernel/livepatch, /proc/modules, /proc/kallsyms, every task's comm,
# stat, stack and patch_state, the kprobes/ftrace/fail_function lists in
# debugfs and the livepatch .ko files.  It writes one gzip'd tar and nothing
# else: the tar stream is made here, in the shell, so no staging directory is
# needed; it goes to FILE under a temporary name and is renamed when complete.
# Without -o the file is klpsim-snapshot-<host>-<UTC date>.tar.gz here.
# An existing FILE is kept unless --force.  "-o -" writes to stdout.
#
# This is the same collector as 'klpsim snapshot': the two write the same
# members with the same bytes.  See docs/snapshot.md in klpsim.
# KLPSIM_ROOT=DIR (for tests only) reads DIR/proc, DIR/sys, ... instead.

set -u
LC_ALL=C
export LC_ALL
VERSION='@KLPSIM_VERSION@'
PROG=klpsim-snapshot
R=${KLPSIM_ROOT:-}
R=${R%/}
TOP=klpsim-snapshot

die() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	exit 2
}

out=
kodir=
force=0
while [ $# -gt 0 ]; do
	case $1 in
	-o)
		[ $# -ge 2 ] || die "-o needs a file name"
		out=$2
		shift 2
		;;
	--ko)
		[ $# -ge 2 ] || die "--ko needs a directory"
		kodir=$2
		shift 2
		;;
	--force)
		force=1
		shift
		;;
	-h | --help)
		echo "usage: sh klpsim-snapshot.sh [-o FILE.tar.gz | -o -] [--ko DIR] [--force]"
		exit 0
		;;
	*) die "unknown argument: $1" ;;
	esac
done
[ -z "$kodir" ] || [ -d "$kodir" ] || die "--ko $kodir: not a directory"
[ -z "$R" ] || [ -d "$R" ] || die "testing root $R: not a directory"

# ------------------------------------------------------------------ tar
#
# ustar headers (GNU 'L' records for names over 100 bytes), uid/gid 0, empty
# user and group names, one mtime, files 0644 and directories 0755: the same
# bytes as TarStream in klpsim/real/collector.py.

# Zn holds n copies of the two characters \0: printf turns each into a NUL.
Z1='\0'
Z2=$Z1$Z1
Z4=$Z2$Z2
Z8=$Z4$Z4
Z16=$Z8$Z8
Z32=$Z16$Z16
Z64=$Z32$Z32
Z128=$Z64$Z64
Z256=$Z128$Z128

nul() { # write $1 NUL bytes
	n=$1
	while [ "$n" -ge 256 ]; do
		printf "$Z256"
		n=$((n - 256))
	done
	for k in 128 64 32 16 8 4 2 1; do
		if [ "$n" -ge "$k" ]; then
			eval "printf \"\$Z$k\""
			n=$((n - k))
		fi
	done
}

ASCII=' !"#$%&'"'"'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefghijklmnopqrstuvwxyz{|}~'

strsum() { # S = the sum of the bytes of $1 (printable ASCII only)
	s=$1
	S=0
	while [ -n "$s" ]; do
		r=${s#?}
		c=${s%"$r"}
		s=$r
		case $c in
		[0-9]) S=$((S + 48 + c)) ;;
		*)
			sp=${ASCII%%"$c"*}
			[ ${#sp} -lt 95 ] || die "cannot archive a name that is not printable ASCII: $1"
			S=$((S + 32 + ${#sp}))
			;;
		esac
	done
}

osum() { # O = the sum of the octal digits of $1
	n=$1
	O=0
	while [ "$n" -gt 0 ]; do
		O=$((O + n % 8))
		n=$((n / 8))
	done
}

hdr1() { # name size typeflag(0 5 L) [sum of the name's bytes]
	case $3 in
	5) mode=0000755 modesum=353 tf=53 ;;
	L) mode=0000644 modesum=350 tf=76 ;;
	*) mode=0000644 modesum=350 tf=48 ;;
	esac
	if [ $# -ge 4 ]; then S=$4; else strsum "$1"; fi
	osum "$2"
	# 3311: uid, gid, devmajor, devminor, the digit padding of size and
	# mtime, eight blanks for the checksum itself, "ustar\0" and "00".
	chk=$((3311 + S + modesum + O + MTSUM + tf))
	printf '%s' "$1"
	nul $((100 - ${#1}))
	printf '%s\0%s\0%s\0%011o\0%s\0%06o\0 %s' "$mode" 0000000 0000000 "$2" "$MTF" "$chk" "$3"
	nul 100
	printf 'ustar\0%s' 00
	nul 64
	printf '%s\0%s\0' 0000000 0000000
	nul 167
}

hdr() { # name size typeflag
	if [ ${#1} -gt 100 ]; then
		hdr1 '././@LongLink' $((${#1} + 1)) L
		printf '%s' "$1"
		nul $(((512 - (${#1} + 1) % 512) % 512 + 1))
		ht=$1
		while [ ${#ht} -gt 100 ]; do ht=${ht%?}; done
		hdr1 "$ht" "$2" "$3"
	else
		hdr1 "$1" "$2" "$3" ${4:-}
	fi
}

digsum() { # D = the sum of the bytes of the digit string $1
	ds=$1
	D=0
	while [ -n "$ds" ]; do
		r=${ds#?}
		D=$((D + 48 + ${ds%"$r"}))
		ds=$r
	done
}

member() { # rel [sum]: a file member holding $C
	hdr "$TOP/$1" ${#C} 0 ${2:-}
	printf '%s' "$C"
	nul $(((512 - ${#C} % 512) % 512))
}

dirm() { # rel: a directory member
	if [ -n "$1" ]; then hdr "$TOP/$1/" 0 5; else hdr "$TOP/" 0 5; fi
}

# --------------------------------------------------------------- reading

rd() { # read file $1 into C; false when it cannot be read
	C=$(cat "$1" 2>/dev/null && printf x) || return 1
	C=${C%x}
}

NL='
'
rdline() { # rd without a fork, for files the kernel never leaves empty
	C=
	l=
	{ while IFS= read -r l; do C=$C$l$NL; done; } 2>/dev/null <"$1" || return 1
	C=$C$l
	[ -n "$C" ]
}

rdsmall() { # rd without a fork when the file has content; cat tells an
	# empty file from a failed read.  A fork and exec per sysfs attribute
	# and per task's stack was most of a collection (a TCG guest: 30 ms each)
	rdline "$1" || rd "$1"
}

item() { # rel status
	ITEMS="$ITEMS
item: $1 $2"
}

why_missing() { # rel; sets W for a path under sys/kernel/ that does not exist
	case $1 in
	sys/kernel/debug/*)
		if [ "$DEBUGFS" = 0 ]; then
			W='absent debugfs-not-mounted'
			return
		fi
		;;
	sys/kernel/tracing/*)
		if [ "$TRACEFS" = 0 ]; then
			W='absent tracefs-not-mounted'
			return
		fi
		;;
	esac
	case $1 in
	sys/kernel/debug/*) [ "$MYUID" = 0 ] || {
		W='unreadable not-root'
		return
	} ;;
	esac
	W='absent no-such-file'
}

why() { # rel [vanished]; sets W: why the path could not be read
	wp=$R/$1
	if [ ! -e "$wp" ]; then
		if [ "${2:-}" = vanished ]; then
			W=vanished
		else
			case $1 in
			sys/kernel/*) why_missing "$1" ;;
			*) W='absent no-such-file' ;;
			esac
		fi
		return
	fi
	perm=$(ls -lnLd "$wp" 2>/dev/null) || {
		W=vanished
		return
	}
	case $perm in
	?r* | ????r* | ???????r*) ;;
	*)
		W='unreadable write-only'
		return
		;;
	esac
	if [ "$MYUID" != 0 ]; then W='unreadable not-root'; else W='unreadable read-failed'; fi
}

want() { # rel: archive a wanted file and note its status either way
	if rd "$R/$1"; then
		member "$1"
		item "$1" collected
		return 0
	fi
	why "$1"
	item "$1" "$W"
	return 1
}

# ----------------------------------------------------------------- parts

walk() { # rel: a directory, every subdirectory and readable attribute
	local rel e sub cnt
	rel=$1
	dirm "$rel"
	cnt=0
	for e in "$R/$rel"/*; do
		[ -e "$e" ] || [ -L "$e" ] || continue
		cnt=$((cnt + 1))
		sub=$rel/${e##*/}
		if [ -d "$e" ]; then
			walk "$sub"
		elif rdsmall "$e"; then
			member "$sub"
		else
			why "$sub" vanished
			item "$sub" "$W"
		fi
	done
	if [ $cnt = 0 ] && [ ! -d "$R/$rel" ]; then item "$rel" vanished; fi
}

livepatch() { # sets PATCHES: the patch directories, in sysfs order
	PATCHES=
	rel=sys/kernel/livepatch
	if [ ! -d "$R/$rel" ]; then
		why "$rel"
		item "$rel" "$W"
		return
	fi
	item "$rel" collected
	walk "$rel"
	for e in "$R/$rel"/*; do
		[ -e "$e" ] || [ -L "$e" ] || continue
		PATCHES="$PATCHES ${e##*/}"
	done
}

task() { # rel: proc/PID/task/TID
	rel=$1
	# comm, stat and patch_state are never empty: an empty read failed.
	if rdline "$R/$rel/comm"; then ok1=1 C1=$C; else ok1=0; fi
	if rdline "$R/$rel/stat"; then ok2=1 C2=$C; else ok2=0; fi
	if rdsmall "$R/$rel/stack"; then ok3=1 C3=$C; else ok3=0; fi
	if rdline "$R/$rel/patch_state"; then ok4=1 C4=$C; else ok4=0; fi
	if [ $ok1 = 0 ] || [ $ok2 = 0 ]; then
		if [ ! -d "$R/$rel" ]; then
			item "$rel" vanished
			return
		fi
	fi
	# The bytes of "klpsim-snapshot/proc/PID/task/TID/": its name sum
	# without strsum's per-character lookups.
	digsum "$2"
	ts=$((SUM_TASKS + D))
	digsum "$3"
	ts=$((ts + D))
	i=1
	for f in comm stat stack patch_state; do
		eval "ok=\$ok$i fs=\$SUM_$i"
		if [ "$ok" = 1 ]; then
			eval "C=\$C$i"
			member "$rel/$f" $((ts + fs))
		else
			why "$rel/$f"
			item "$rel/$f" "$W"
		fi
		i=$((i + 1))
	done
}

tasks() {
	for p in "$R"/proc/[0-9]*; do
		pid=${p##*/}
		case $pid in *'*'*) continue ;; esac
		found=0
		for t in "$p"/task/[0-9]*; do
			case ${t##*/} in *'*'*) continue ;; esac
			found=1
			task "proc/$pid/task/${t##*/}" "$pid" "${t##*/}"
		done
		if [ $found = 0 ] && [ ! -d "$p/task" ]; then item "proc/$pid" vanished; fi
	done
}

holders() { # module
	rel=sys/module/$1/holders
	if [ ! -d "$R/$rel" ]; then
		why "$rel"
		item "$rel" "$W"
		return
	fi
	dirm "$rel"
	C=
	for e in "$R/$rel"/*; do
		[ -e "$e" ] || [ -L "$e" ] || continue
		member "$rel/${e##*/}"
	done
	item "$rel" collected
}

lp_modules() { # LPMODS: the patch modules, then other modules tainted K
	LPMODS=$PATCHES
	oldifs=$IFS
	IFS='
'
	set -f
	for line in $MODULES; do
		IFS=$oldifs
		set -- $line
		if [ $# -ge 7 ]; then
			case $7 in
			\(*K*)
				case " $LPMODS " in
				*" $1 "*) ;;
				*) LPMODS="$LPMODS $1" ;;
				esac
				;;
			esac
		fi
	done
	IFS=$oldifs
	set +f
}

modname() { # M: the module name of file name $1, or empty
	case $1 in
	*.ko) M=${1%.ko} ;;
	*.ko.xz) M=${1%.ko.xz} ;;
	*.ko.zst) M=${1%.ko.zst} ;;
	*.ko.gz) M=${1%.ko.gz} ;;
	*)
		M=
		return
		;;
	esac
	m=$M
	M=
	while [ -n "$m" ]; do
		r=${m#?}
		c=${m%"$r"}
		m=$r
		case $c in -) M=${M}_ ;; *) M=$M$c ;; esac
	done
}

kowalk() { # dir name: archive the matching .ko files under dir as name/...
	local dir name e rel
	dir=$1
	name=$2
	for e in "$dir"/*; do
		[ -e "$e" ] || continue
		rel=$name/${e##*/}
		if [ -d "$e" ] && [ ! -L "$e" ]; then
			kowalk "$e" "$rel"
		elif [ -f "$e" ]; then
			modname "${e##*/}"
			[ -n "$M" ] || continue
			case " $LPMODS " in *" $M "*) ;; *) continue ;; esac
			if [ ! -r "$e" ] || ! ls=$(ls -lnL "$e" 2>/dev/null); then
				KOFOUND="$KOFOUND
$M unreadable $rel"
				continue
			fi
			set -- $ls
			hdr "$TOP/$rel" "$5" 0
			cat "$e"
			nul $(((512 - $5 % 512) % 512))
			KOFOUND="$KOFOUND
$M collected $rel"
		fi
	done
}

ko_files() { # the .ko files of LPMODS
	KOS=
	[ -n "$LPMODS" ] || return 0
	KOFOUND=
	if [ -n "$kodir" ]; then
		top=$(cd "$kodir" && pwd -P) || return 0
		kowalk "$top" "${top#/}"
	else
		kowalk "$R/lib/modules/$RELEASE" "lib/modules/$RELEASE"
	fi
	oldifs=$IFS
	for m in $LPMODS; do
		n=0
		IFS='
'
		for line in $KOFOUND; do
			case $line in "$m "*)
				KOS="$KOS
ko: $line"
				n=1
				;;
			esac
		done
		IFS=$oldifs
		[ $n = 1 ] || KOS="$KOS
ko: $m absent not-found"
	done
}

collect() { # the whole tar stream on stdout
	ITEMS=
	DEBUGFS=0
	TRACEFS=0
	if rd "$R/proc/mounts"; then
		oldifs=$IFS
		IFS='
'
		set -f
		for line in $C; do
			IFS=$oldifs
			set -- $line
			[ $# -ge 3 ] || continue
			case "$2 $3" in
			"/sys/kernel/debug debugfs") DEBUGFS=1 ;;
			"/sys/kernel/tracing tracefs") TRACEFS=1 ;;
			esac
		done
		IFS=$oldifs
		set +f
	fi
	dirm ''
	RELEASE=
	if want proc/sys/kernel/osrelease; then
		RELEASE=$(printf '%s' "$C")
	fi
	want proc/sys/kernel/ftrace_enabled
	want proc/sys/kernel/tainted
	MODULES=
	if want proc/modules; then MODULES=$C; fi
	livepatch
	tasks
	lp_modules
	for m in $LPMODS; do
		want "sys/module/$m/refcnt"
		holders "$m"
	done
	want sys/kernel/debug/kprobes/list
	want sys/kernel/tracing/enabled_functions || want sys/kernel/debug/tracing/enabled_functions
	want sys/kernel/debug/fail_function/injectable
	ADDR=none
	if want proc/kallsyms && [ -n "$C" ]; then
		# Real when some address does not start with 0: as root the per-CPU
		# symbols at the top still read 0 (they are offsets), text does not.
		case $C in
		[!0]* | *"$NL"[!0]*) ADDR=real ;;
		*) ADDR=zero ;;
		esac
	fi
	ko_files
	C="format: klpsim-snapshot 1
klpsim: $VERSION
collector: sh
date: $DATE
release: ${RELEASE:-unknown}
uid: $MYUID
root: $([ "$MYUID" = 0 ] && echo yes || echo no)
kallsyms-addresses: $ADDR"
	[ -z "$R" ] || C="$C
testing-root: $R"
	C="$C$ITEMS$KOS
"
	member MANIFEST
	nul 1024
}

# ------------------------------------------------------------------ main

MYUID=
while read -r k v rest; do
	case $k in Uid:) MYUID=$v ;; esac
done </proc/self/status
[ -n "$MYUID" ] || die "cannot read the uid from /proc/self/status"
MT=$(date +%s)
MTF=$(printf '%011o' "$MT")
osum "$MT"
MTSUM=$O
strsum "$TOP/proc//task//"
SUM_TASKS=$S
strsum comm
SUM_1=$S
strsum stat
SUM_2=$S
strsum stack
SUM_3=$S
strsum patch_state
SUM_4=$S
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)

if [ -z "$out" ]; then
	host=host
	if rd "$R/proc/sys/kernel/hostname"; then
		h=$(printf '%s' "$C")
		host=
		while [ -n "$h" ]; do
			r=${h#?}
			c=${h%"$r"}
			h=$r
			case $c in [A-Za-z0-9._-]) host=$host$c ;; *) host=${host}_ ;; esac
		done
		[ -n "$host" ] || host=host
	fi
	out=klpsim-snapshot-$host-$(date -u +%Y%m%d-%H%M%S).tar.gz
fi

if [ "$out" = - ]; then
	exec 4>&1
	st=$({ { collect; echo "c$?" >&3; } | { gzip -c || echo "g$?" >&3; } >&4; } 3>&1)
	[ "$st" = c0 ] || die "collecting failed ($st)"
	exit 0
fi

if [ -e "$out" ] || [ -L "$out" ]; then
	[ $force = 1 ] || die "$out: exists (use --force to overwrite)"
fi
case $out in
*/*) tmp=${out%/*}/.${out##*/}.tmp-$$ ;;
*) tmp=.$out.tmp-$$ ;;
esac
trap 'rm -f "$tmp"' EXIT
trap 'exit 130' INT TERM
st=$({ { collect; echo "c$?" >&3; } | { gzip -c || echo "g$?" >&3; } >"$tmp"; } 3>&1) ||
	die "$out: cannot write"
[ "$st" = c0 ] || die "$out: collecting failed ($st)"
if [ $force = 1 ]; then
	mv -f "$tmp" "$out" || die "$out: cannot rename $tmp"
elif ! ln "$tmp" "$out" 2>/dev/null; then
	if [ -e "$out" ] || [ -L "$out" ]; then die "$out: exists (use --force to overwrite)"; fi
	mv "$tmp" "$out" || die "$out: cannot rename $tmp"
fi
rm -f "$tmp"
printf '%s\n' "$out"
