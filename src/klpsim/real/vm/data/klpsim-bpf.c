// SPDX-License-Identifier: GPL-2.0
/*
 * klpsim-bpf: the guest side of klpsim's BPF verbs (bpf_attach, bpf_detach,
 * bpf_attachments, call) on a real kernel.  klpsim's own tool: raw bpf(2)
 * and perf_event_open(2), BPF programs assembled here instruction by
 * instruction, no libbpf and no compiler for BPF.  Built statically on the
 * host (klpsim.real.vm.bpftool) and copied into the guest as /klp/bin/.
 *
 *   klpsim-bpf attach TYPE FUNC [--override RET] [--ret RET] [--name NAME]
 *   klpsim-bpf detach NAME
 *   klpsim-bpf list
 *   klpsim-bpf call FUNC    (a /proc show function, MOD:FUNC, __x64_sys_syncfs)
 *   klpsim-bpf reset
 *
 * Every program, when it runs, counts its hit and appends one record
 * {tag, bpf_get_func_ip(), value} to a shared array map used as a ring, so
 * that "call" can print which programs ran, in which order, what each saw,
 * and then what the caller saw, in the words of the model's "call" verb
 * (src/klpsim/scenario/bpfverbs.py).  Links are pinned in bpffs
 * (/sys/fs/bpf/klpsim/); what the verbs print about a link is kept in
 * /tmp/klpsim-bpf/NAME.
 *
 * Types: kprobe and kretprobe are perf kprobe events with a BPF link
 * (BPF_PERF_EVENT), kprobe_multi and kretprobe_multi are BPF_TRACE_KPROBE_MULTI
 * links, fentry, fexit and fmod_ret are tracing programs found by their BTF
 * id in /sys/kernel/btf/vmlinux (or /sys/kernel/btf/MOD for MOD:FUNC), as
 * libbpf finds it (-ESRCH when there is none).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/vfs.h>
#include <unistd.h>

#define PIN_DIR "/sys/fs/bpf/klpsim"
#define MAP_PIN PIN_DIR "/log"
#define META_DIR "/tmp/klpsim-bpf"
#define LIVEPATCH_TABLE "/klp/mods/livepatch-funcs"

/* The log map: slot 0 counts records, 1..NR_LOG are the ring, then one
 * hit counter per tag. */
#define NR_LOG 64
#define HITS_BASE (1 + NR_LOG)
#define MAX_TAG 255
#define NR_SLOTS (HITS_BASE + MAX_TAG + 1)

#define BPF_FS_MAGIC_ 0xcafe4a11
#define BPF_FUNC_map_lookup_elem_ 1
#define BPF_FUNC_override_return_ 58
#define BPF_FUNC_get_func_ip_ 173
#define BPF_FUNC_get_func_ret_ 184
#define PT_REGS_AX 80 /* offsetof(struct pt_regs, ax) on x86_64 */
#define LOG_SIZE (1 << 20)

struct record {
	uint64_t tag;
	uint64_t ip;
	uint64_t value;
};

enum kind { KPROBE, KRETPROBE, KPROBE_MULTI, KRETPROBE_MULTI, FENTRY, FEXIT, FMOD_RET, NR_KINDS };
static const char *const kind_names[] = {
	"kprobe", "kretprobe", "kprobe_multi", "kretprobe_multi", "fentry", "fexit", "fmod_ret",
};

struct link_meta {
	char name[64];
	int order;
	int tag;
	enum kind kind;
	char where[512];
	int has_override;
	long long override;
	long long ret;
	unsigned long offset;
	int body; /* a kprobe inside the body, not at the entry */
};

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("klpsim-bpf: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

/* ------------------------------------------------------------ errno names */

static const struct {
	int err;
	const char *name;
} errnames[] = {
	{ EPERM, "EPERM" },	   { ENOENT, "ENOENT" },   { ESRCH, "ESRCH" },
	{ EINTR, "EINTR" },	   { EIO, "EIO" },	   { E2BIG, "E2BIG" },
	{ ENOEXEC, "ENOEXEC" },	   { EAGAIN, "EAGAIN" },   { ENOMEM, "ENOMEM" },
	{ EACCES, "EACCES" },	   { EFAULT, "EFAULT" },   { EBUSY, "EBUSY" },
	{ EEXIST, "EEXIST" },	   { ENODEV, "ENODEV" },   { ENOTDIR, "ENOTDIR" },
	{ EISDIR, "EISDIR" },	   { EINVAL, "EINVAL" },   { ENOSPC, "ENOSPC" },
	{ ERANGE, "ERANGE" },	   { EILSEQ, "EILSEQ" },   { ENAMETOOLONG, "ENAMETOOLONG" },
	{ ENOSYS, "ENOSYS" },	   { ENOTEMPTY, "ENOTEMPTY" }, { EOPNOTSUPP, "EOPNOTSUPP" },
	{ EADDRINUSE, "EADDRINUSE" }, { EADDRNOTAVAIL, "EADDRNOTAVAIL" },
	{ ECANCELED, "ECANCELED" },
};

static const char *errname(int err, char *buf, size_t len)
{
	for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (errnames[i].err == err)
			return errnames[i].name;
	snprintf(buf, len, "-%d", err);
	return buf;
}

/* A value as the model's parse_ret() reads it: a number or [-]EXXX. */
static int parse_ret(const char *text, long long *out)
{
	const char *name = text[0] == '-' ? text + 1 : text;
	char *end;

	if (name[0] == 'E') {
		for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
			if (!strcmp(errnames[i].name, name)) {
				*out = text[0] == '-' ? -errnames[i].err : errnames[i].err;
				return 0;
			}
		return -1;
	}
	errno = 0;
	*out = strtoll(text, &end, 0);
	return errno || !*text || *end ? -1 : 0;
}

/* ---------------------------------------------------------------- bpf(2) */

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static int map_lookup(int fd, uint32_t key, void *value)
{
	union bpf_attr a = { 0 };

	a.map_fd = fd;
	a.key = (uint64_t)(uintptr_t)&key;
	a.value = (uint64_t)(uintptr_t)value;
	return sys_bpf(BPF_MAP_LOOKUP_ELEM, &a);
}

static int map_update(int fd, uint32_t key, const void *value)
{
	union bpf_attr a = { 0 };

	a.map_fd = fd;
	a.key = (uint64_t)(uintptr_t)&key;
	a.value = (uint64_t)(uintptr_t)value;
	return sys_bpf(BPF_MAP_UPDATE_ELEM, &a);
}

static int obj_get(const char *path)
{
	union bpf_attr a = { 0 };

	a.pathname = (uint64_t)(uintptr_t)path;
	return sys_bpf(BPF_OBJ_GET, &a);
}

static int obj_pin(int fd, const char *path)
{
	union bpf_attr a = { 0 };

	a.bpf_fd = fd;
	a.pathname = (uint64_t)(uintptr_t)path;
	return sys_bpf(BPF_OBJ_PIN, &a);
}

/* bpffs at /sys/fs/bpf, the log map pinned in it (created on first use). */
static int log_map(void)
{
	struct statfs st;
	union bpf_attr a = { 0 };
	int fd;

	if (statfs("/sys/fs/bpf", &st) || st.f_type != BPF_FS_MAGIC_) {
		mkdir("/sys/fs/bpf", 0755);
		if (mount("bpf", "/sys/fs/bpf", "bpf", 0, NULL))
			die("cannot mount bpffs on /sys/fs/bpf: %s", strerror(errno));
	}
	mkdir(PIN_DIR, 0755);
	mkdir(META_DIR, 0755);
	fd = obj_get(MAP_PIN);
	if (fd >= 0)
		return fd;
	a.map_type = BPF_MAP_TYPE_ARRAY;
	a.key_size = 4;
	a.value_size = sizeof(struct record);
	a.max_entries = NR_SLOTS;
	strcpy(a.map_name, "klpsim_log");
	fd = sys_bpf(BPF_MAP_CREATE, &a);
	if (fd < 0)
		die("cannot create the log map: %s", strerror(errno));
	if (obj_pin(fd, MAP_PIN))
		die("cannot pin the log map: %s", strerror(errno));
	return fd;
}

/* ------------------------------------------------------ BPF instructions */

#define INSN(c, d, s, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })
#define MOV64_REG(d, s) INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOV64_IMM(d, i) INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define ALU64_IMM(op, d, i) INSN(BPF_ALU64 | (op) | BPF_K, d, 0, 0, i)
#define LDX_DW(d, s, o) INSN(BPF_LDX | BPF_DW | BPF_MEM, d, s, o, 0)
#define STX_DW(d, s, o) INSN(BPF_STX | BPF_DW | BPF_MEM, d, s, o, 0)
#define STX_W(d, s, o) INSN(BPF_STX | BPF_W | BPF_MEM, d, s, o, 0)
#define ST_W(d, o, i) INSN(BPF_ST | BPF_W | BPF_MEM, d, 0, o, i)
#define ST_DW(d, o, i) INSN(BPF_ST | BPF_DW | BPF_MEM, d, 0, o, i)
#define JEQ_IMM(d, i, o) INSN(BPF_JMP | BPF_JEQ | BPF_K, d, 0, o, i)
#define JA(o) INSN(BPF_JMP | BPF_JA, 0, 0, o, 0)
#define CALL(id) INSN(BPF_JMP | BPF_CALL, 0, 0, 0, id)
#define EXIT() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

struct prog {
	struct bpf_insn insn[128];
	int n;
};

static void emit(struct prog *p, struct bpf_insn i)
{
	if (p->n >= (int)(sizeof(p->insn) / sizeof(p->insn[0])))
		die("program too long");
	p->insn[p->n++] = i;
}

static void emit_ld64(struct prog *p, int dst, int src, uint64_t imm)
{
	emit(p, INSN(BPF_LD | BPF_DW | BPF_IMM, dst, src, 0, (int32_t)(uint32_t)imm));
	emit(p, INSN(0, 0, 0, 0, (int32_t)(uint32_t)(imm >> 32)));
}

/* r0 = &map[key] (key in *(u32 *)(r10 - 4)); jump to "out" if NULL: the
 * caller patches the jump at the returned index. */
static int emit_lookup(struct prog *p, int map_fd)
{
	emit_ld64(p, 1, BPF_PSEUDO_MAP_FD, (uint32_t)map_fd);
	emit(p, MOV64_REG(2, 10));
	emit(p, ALU64_IMM(BPF_ADD, 2, -4));
	emit(p, CALL(BPF_FUNC_map_lookup_elem_));
	emit(p, JEQ_IMM(0, 0, 0));
	return p->n - 1;
}

static void patch_jump(struct prog *p, int at, int target)
{
	p->insn[at].off = target - at - 1;
}

/*
 * r6 = ctx; r7 = the function's ip; r8 = what the record's value is (the
 * return value an exit program saw, the override, fmod_ret's return);
 * count the hit; append {tag, r7, r8}; then override or return.
 */
static void build_program(struct prog *p, int map_fd, const struct link_meta *m)
{
	int exits[3], nexit = 0, at;

	p->n = 0;
	emit(p, MOV64_REG(6, 1));
	emit(p, MOV64_REG(1, 6));
	emit(p, CALL(BPF_FUNC_get_func_ip_));
	emit(p, MOV64_REG(7, 0));
	switch (m->kind) {
	case FEXIT:
		emit(p, ST_DW(10, -16, 0));
		emit(p, MOV64_REG(1, 6));
		emit(p, MOV64_REG(2, 10));
		emit(p, ALU64_IMM(BPF_ADD, 2, -16));
		emit(p, CALL(BPF_FUNC_get_func_ret_));
		emit(p, LDX_DW(8, 10, -16));
		break;
	case KRETPROBE:
	case KRETPROBE_MULTI:
		emit(p, LDX_DW(8, 6, PT_REGS_AX));
		break;
	case FMOD_RET:
		emit_ld64(p, 8, 0, (uint64_t)m->ret);
		break;
	default:
		if (m->has_override)
			emit_ld64(p, 8, 0, (uint64_t)m->override);
		else
			emit(p, MOV64_IMM(8, 0));
	}
	/* map[HITS_BASE + tag].tag += 1 */
	emit(p, ST_W(10, -4, HITS_BASE + m->tag));
	exits[nexit++] = emit_lookup(p, map_fd);
	emit(p, LDX_DW(1, 0, 0));
	emit(p, ALU64_IMM(BPF_ADD, 1, 1));
	emit(p, STX_DW(0, 1, 0));
	/* seq = map[0].tag++; map[1 + seq % NR_LOG] = {tag, ip, value} */
	emit(p, ST_W(10, -4, 0));
	exits[nexit++] = emit_lookup(p, map_fd);
	emit(p, LDX_DW(9, 0, 0));
	emit(p, MOV64_REG(1, 9));
	emit(p, ALU64_IMM(BPF_ADD, 1, 1));
	emit(p, STX_DW(0, 1, 0));
	emit(p, ALU64_IMM(BPF_AND, 9, NR_LOG - 1));
	emit(p, ALU64_IMM(BPF_ADD, 9, 1));
	emit(p, STX_W(10, 9, -4));
	exits[nexit++] = emit_lookup(p, map_fd);
	emit(p, ST_DW(0, 0, m->tag));
	emit(p, STX_DW(0, 7, 8));
	emit(p, STX_DW(0, 8, 16));
	at = p->n;
	for (int i = 0; i < nexit; i++)
		patch_jump(p, exits[i], at);
	if (m->has_override) {
		emit(p, MOV64_REG(1, 6));
		emit_ld64(p, 2, 0, (uint64_t)m->override);
		emit(p, CALL(BPF_FUNC_override_return_));
	}
	if (m->kind == FMOD_RET)
		emit_ld64(p, 0, 0, (uint64_t)m->ret);
	else
		emit(p, MOV64_IMM(0, 0));
	emit(p, EXIT());
}

/* The verifier's own words: its log without the instruction trace, the
 * register states and the statistics. */
static void print_verifier_log(const char *log)
{
	char line[1024];
	const char *s = log;

	while (*s) {
		size_t n = strcspn(s, "\n");
		const char *q;

		snprintf(line, sizeof(line), "%.*s", (int)n, s);
		s += n + (s[n] == '\n');
		q = line;
		while (isdigit((unsigned char)*q))
			q++;
		if (!line[0] || (q != line && (*q == ':' || *q == ' ')) || !strncmp(line, "processed ", 10) ||
		    !strncmp(line, "verification time", 17) || !strncmp(line, "stack depth", 11) ||
		    !strncmp(line, "func#", 5) || !strncmp(line, "from ", 5) || !strncmp(line, "; ", 2) ||
		    !strncmp(line, "mark_precise", 12) || !strncmp(line, "last_idx", 8) ||
		    !strncmp(line, "Validating ", 11) || !strncmp(line, "R", 1))
			continue;
		fprintf(stderr, "bpf_attach: verifier: %s\n", line);
	}
}

/* ------------------------------------------------------------------ BTF */

struct btf_hdr {
	uint16_t magic;
	uint8_t version, flags;
	uint32_t hdr_len, type_off, type_len, str_off, str_len;
};

struct btf_t {
	uint32_t name_off, info, size_type;
};

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0, r;

	if (!f)
		return NULL;
	do {
		if (n + 65536 > cap) {
			cap = cap ? cap * 2 : 1 << 20;
			buf = realloc(buf, cap + 1);
			if (!buf)
				die("out of memory");
		}
		r = fread(buf + n, 1, cap - n, f);
		n += r;
	} while (r);
	fclose(f);
	buf[n] = 0;
	*len = n;
	return buf;
}

/*
 * The id of FUNC name in the BTF at path, numbered after base_count types
 * (a module's split BTF continues vmlinux's ids).  Returns the id, 0 if
 * absent, and *count the number of types in it.
 */
static int btf_find_func(const char *path, const char *name, uint32_t base_count, uint32_t *count)
{
	size_t len;
	char *data = read_file(path, &len);
	struct btf_hdr *h = (struct btf_hdr *)data;
	uint32_t id = base_count, found = 0;

	*count = 0;
	if (!data)
		return -1;
	if (len < sizeof(*h) || h->magic != 0xeB9F)
		die("%s: not BTF", path);
	const char *types = data + h->hdr_len + h->type_off;
	const char *end = types + h->type_len;
	const char *strs = data + h->hdr_len + h->str_off;
	const char *p = types;

	while (p < end) {
		const struct btf_t *t = (const struct btf_t *)p;
		uint32_t kind = (t->info >> 24) & 0x1f, vlen = t->info & 0xffff;

		id++;
		p += sizeof(*t);
		switch (kind) {
		case 1: /* INT */
		case 14: /* VAR */
		case 17: /* DECL_TAG */
			p += 4;
			break;
		case 3: /* ARRAY */
			p += 12;
			break;
		case 4: /* STRUCT */
		case 5: /* UNION */
		case 15: /* DATASEC */
		case 19: /* ENUM64 */
			p += 12 * vlen;
			break;
		case 6: /* ENUM */
		case 13: /* FUNC_PROTO */
			p += 8 * vlen;
			break;
		case 12: /* FUNC */
			if (!found && !strcmp(strs + t->name_off, name))
				found = id;
			break;
		default: /* PTR FWD TYPEDEF VOLATILE CONST RESTRICT FLOAT TYPE_TAG */
			break;
		}
	}
	*count = id;
	free(data);
	return found;
}

/* libbpf's lookup: vmlinux, or MOD's BTF for MOD:FUNC; -ESRCH if none. */
static int find_btf_id(const char *mod, const char *func, int *obj_fd)
{
	uint32_t vmlinux_count, count;
	int id;

	*obj_fd = 0;
	id = btf_find_func("/sys/kernel/btf/vmlinux", mod ? "" : func, 0, &vmlinux_count);
	if (id < 0)
		die("cannot read /sys/kernel/btf/vmlinux");
	if (!mod)
		return id ? id : -ESRCH;
	char path[300];

	snprintf(path, sizeof(path), "/sys/kernel/btf/%s", mod);
	id = btf_find_func(path, func, vmlinux_count, &count);
	if (id <= 0)
		return -ESRCH;
	/* the module's BTF object: walk the kernel's BTF ids for its name */
	union bpf_attr a;
	uint32_t next = 0;

	for (;;) {
		struct bpf_btf_info info = { 0 };
		char nm[64] = "";
		int fd;

		memset(&a, 0, sizeof(a));
		a.start_id = next;
		if (sys_bpf(BPF_BTF_GET_NEXT_ID, &a))
			return -ESRCH;
		next = a.next_id;
		memset(&a, 0, sizeof(a));
		a.btf_id = next;
		fd = sys_bpf(BPF_BTF_GET_FD_BY_ID, &a);
		if (fd < 0)
			continue;
		info.name = (uint64_t)(uintptr_t)nm;
		info.name_len = sizeof(nm);
		memset(&a, 0, sizeof(a));
		a.info.bpf_fd = fd;
		a.info.info_len = sizeof(info);
		a.info.info = (uint64_t)(uintptr_t)&info;
		if (!sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) && !strcmp(nm, mod)) {
			*obj_fd = fd;
			return id;
		}
		close(fd);
	}
}

/* ------------------------------------------------------------- kallsyms */

struct ksym {
	uint64_t addr;
	char name[128];
	char mod[64];
};

static struct ksym *ksyms;
static size_t nksyms;

static int ksym_cmp(const void *a, const void *b)
{
	const struct ksym *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static void load_kallsyms(void)
{
	FILE *f = fopen("/proc/kallsyms", "r");
	char line[512];
	size_t cap = 0;

	if (!f)
		die("cannot read /proc/kallsyms");
	while (fgets(line, sizeof(line), f)) {
		struct ksym k = { 0 };
		char type;

		if (sscanf(line, "%lx %c %127s [%63[^]]]", &k.addr, &type, k.name, k.mod) < 3)
			continue;
		if (type != 't' && type != 'T' && type != 'w' && type != 'W')
			continue;
		if (nksyms == cap) {
			cap = cap ? cap * 2 : 65536;
			ksyms = realloc(ksyms, cap * sizeof(*ksyms));
			if (!ksyms)
				die("out of memory");
		}
		ksyms[nksyms++] = k;
	}
	fclose(f);
	qsort(ksyms, nksyms, sizeof(*ksyms), ksym_cmp);
}

/* The function an ip is in (the nearest symbol at or below it). */
static const char *ksym_name(uint64_t ip)
{
	size_t lo = 0, hi = nksyms;

	if (!nksyms)
		load_kallsyms();
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (ksyms[mid].addr <= ip)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? ksyms[lo - 1].name : NULL;
}

/* ------------------------------------------------------------- metadata */

static int meta_path(char *buf, size_t len, const char *name)
{
	return snprintf(buf, len, META_DIR "/%s", name);
}

static int meta_read(const char *name, struct link_meta *m)
{
	char path[256], kind[32];
	FILE *f;
	int n;

	meta_path(path, sizeof(path), name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	memset(m, 0, sizeof(*m));
	n = fscanf(f, "%d %d %31s %d %lld %lld %lu %d %511s", &m->order, &m->tag, kind, &m->has_override,
		   &m->override, &m->ret, &m->offset, &m->body, m->where);
	fclose(f);
	if (n != 9)
		return -1;
	snprintf(m->name, sizeof(m->name), "%s", name);
	for (int k = 0; k < NR_KINDS; k++)
		if (!strcmp(kind, kind_names[k]))
			m->kind = k;
	return 0;
}

static void meta_write(const struct link_meta *m)
{
	char path[256];
	FILE *f;

	meta_path(path, sizeof(path), m->name);
	f = fopen(path, "w");
	if (!f)
		die("cannot write %s", path);
	fprintf(f, "%d %d %s %d %lld %lld %lu %d %s\n", m->order, m->tag, kind_names[m->kind],
		m->has_override, m->override, m->ret, m->offset, m->body, m->where);
	fclose(f);
}

static int meta_cmp(const void *a, const void *b)
{
	return ((const struct link_meta *)a)->order - ((const struct link_meta *)b)->order;
}

/* Every attached link, in attach order. */
static int meta_all(struct link_meta *out, int max)
{
	DIR *d = opendir(META_DIR);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max)
		if (e->d_name[0] != '.' && !meta_read(e->d_name, &out[n]))
			n++;
	closedir(d);
	qsort(out, n, sizeof(*out), meta_cmp);
	return n;
}

static int counter_next(const char *file)
{
	char path[256];
	FILE *f;
	int v = 0;

	snprintf(path, sizeof(path), META_DIR "/%s", file);
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 0;
		fclose(f);
	}
	f = fopen(path, "w");
	if (!f)
		die("cannot write %s", path);
	fprintf(f, "%d\n", v + 1);
	fclose(f);
	return v + 1;
}

/* -------------------------------------------------------------- attach */

static int perf_kprobe(const char *func, unsigned long offset, int is_return)
{
	struct perf_event_attr attr = { 0 };
	char buf[64] = "";
	FILE *f;
	int type, bit = -1;

	f = fopen("/sys/bus/event_source/devices/kprobe/type", "r");
	if (!f || fscanf(f, "%d", &type) != 1)
		die("the kernel has no kprobe PMU (/sys/bus/event_source/devices/kprobe/type)");
	fclose(f);
	if (is_return) {
		f = fopen("/sys/bus/event_source/devices/kprobe/format/retprobe", "r");
		if (!f || fscanf(f, "config:%d", &bit) != 1)
			die("the kprobe PMU has no retprobe bit");
		fclose(f);
	}
	(void)buf;
	attr.size = sizeof(attr);
	attr.type = type;
	attr.config = is_return ? 1ULL << bit : 0;
	attr.kprobe_func = (uint64_t)(uintptr_t)func;
	attr.probe_offset = offset;
	return syscall(__NR_perf_event_open, &attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);
}

/* Is the kprobe at func+offset on ftrace (the entry: func+4 past endbr64
 * with IBT), as /sys/kernel/debug/kprobes/list shows it? */
static int kprobe_on_ftrace(const char *func, unsigned long offset)
{
	FILE *f = fopen("/sys/kernel/debug/kprobes/list", "r");
	char line[512], want[300];
	int found = 0;

	if (!f)
		return 0;
	snprintf(want, sizeof(want), " %s+0x%lx ", func, offset);
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, want) && strstr(line, "[FTRACE]");
	fclose(f);
	return found;
}

/* "mod:func" or "func" -> module (or NULL) and function, in place. */
static char *split_mod(char *spec, char **func)
{
	char *colon = strrchr(spec, ':');

	if (!colon) {
		*func = spec;
		return NULL;
	}
	*colon = 0;
	*func = colon + 1;
	return spec;
}

static int cmd_attach(int argc, char **argv)
{
	struct link_meta m = { 0 }, all[MAX_TAG];
	char spec[512], pin[300], errbuf[16];
	const char *typ, *func_arg, *name = NULL;
	long long value;
	int map_fd, prog_fd = -1, link_fd = -1, err = 0, nall;
	static char log[LOG_SIZE];
	union bpf_attr a;
	struct prog p;

	if (argc < 2)
		die("usage: attach TYPE FUNC [--override RET] [--ret RET] [--name NAME]");
	typ = argv[0];
	func_arg = argv[1];
	m.kind = NR_KINDS;
	for (int k = 0; k < NR_KINDS; k++)
		if (!strcmp(typ, kind_names[k]))
			m.kind = k;
	if (m.kind == NR_KINDS)
		die("unknown type '%s'", typ);
	for (int i = 2; i < argc; i++) {
		if (i + 1 >= argc)
			die("%s needs a value", argv[i]);
		if (!strcmp(argv[i], "--name")) {
			name = argv[++i];
		} else if (!strcmp(argv[i], "--override") || !strcmp(argv[i], "--ret")) {
			if (parse_ret(argv[i + 1], &value))
				die("bad value '%s'", argv[i + 1]);
			if (argv[i][2] == 'o') {
				m.has_override = 1;
				m.override = value;
			} else {
				m.ret = value;
			}
			i++;
		} else {
			die("unknown option '%s'", argv[i]);
		}
	}
	map_fd = log_map();
	if (name) {
		if (!meta_read(name, &all[0])) {
			fprintf(stderr, "bpf_attach: --name: '%s' is attached already\n", name);
			return 0;
		}
		snprintf(m.name, sizeof(m.name), "%s", name);
	}
	/* the smallest tag no attached link has */
	nall = meta_all(all, MAX_TAG);
	for (m.tag = 1; m.tag <= MAX_TAG; m.tag++) {
		int used = 0;

		for (int i = 0; i < nall; i++)
			used |= all[i].tag == m.tag;
		if (!used)
			break;
	}
	if (m.tag > MAX_TAG)
		die("too many links");
	struct record zero = { 0 };

	map_update(map_fd, HITS_BASE + m.tag, &zero);

	/* FUNC: mod:func, func+0xOFF, or a comma list for the multi types */
	snprintf(spec, sizeof(spec), "%s", func_arg);
	char *plus = strchr(spec, '+');

	if (plus) {
		*plus = 0;
		m.offset = strtoul(plus + 1, NULL, 0);
	}
	snprintf(m.where, sizeof(m.where), "%s", func_arg);

	build_program(&p, map_fd, &m);
	memset(&a, 0, sizeof(a));
	a.insns = (uint64_t)(uintptr_t)p.insn;
	a.insn_cnt = p.n;
	a.license = (uint64_t)(uintptr_t)"GPL";
	a.log_buf = (uint64_t)(uintptr_t)log;
	a.log_size = sizeof(log);
	a.log_level = 1;
	log[0] = 0;
	int btf_obj_fd = 0;

	switch (m.kind) {
	case KPROBE:
	case KRETPROBE:
		a.prog_type = BPF_PROG_TYPE_KPROBE;
		break;
	case KPROBE_MULTI:
	case KRETPROBE_MULTI:
		a.prog_type = BPF_PROG_TYPE_KPROBE;
		a.expected_attach_type = BPF_TRACE_KPROBE_MULTI;
		break;
	default: {
		char *fn, *mod;
		int id;

		a.prog_type = BPF_PROG_TYPE_TRACING;
		a.expected_attach_type = m.kind == FENTRY ? BPF_TRACE_FENTRY
				       : m.kind == FEXIT  ? BPF_TRACE_FEXIT
							  : BPF_MODIFY_RETURN;
		char tmp[512];

		snprintf(tmp, sizeof(tmp), "%s", spec);
		mod = split_mod(tmp, &fn);
		id = find_btf_id(mod, fn, &btf_obj_fd);
		if (id < 0) {
			err = -id;
			goto fail;
		}
		a.attach_btf_id = id;
		a.attach_btf_obj_fd = btf_obj_fd;
	}
	}
	strcpy(a.prog_name, "klpsim");
	prog_fd = sys_bpf(BPF_PROG_LOAD, &a);
	if (prog_fd < 0) {
		err = errno;
		print_verifier_log(log);
		goto fail;
	}
	memset(&a, 0, sizeof(a));
	a.link_create.prog_fd = prog_fd;
	switch (m.kind) {
	case KPROBE:
	case KRETPROBE: {
		char tmp[512], *fn, *mod;
		char sym[512];
		int pfd;

		snprintf(tmp, sizeof(tmp), "%s", spec);
		mod = split_mod(tmp, &fn);
		if (mod)
			snprintf(sym, sizeof(sym), "%s:%s", mod, fn);
		else
			snprintf(sym, sizeof(sym), "%s", fn);
		pfd = perf_kprobe(sym, m.offset, m.kind == KRETPROBE);
		if (pfd < 0) {
			err = errno;
			goto fail;
		}
		m.body = m.offset && !kprobe_on_ftrace(fn, m.offset);
		a.link_create.target_fd = pfd;
		a.link_create.attach_type = BPF_PERF_EVENT;
		link_fd = sys_bpf(BPF_LINK_CREATE, &a);
		err = errno;
		close(pfd);
		break;
	}
	case KPROBE_MULTI:
	case KRETPROBE_MULTI: {
		const char *syms[64];
		int cnt = 0;
		char *save, *tok;

		for (tok = strtok_r(spec, ",", &save); tok && cnt < 64; tok = strtok_r(NULL, ",", &save)) {
			char *c = strrchr(tok, ':');

			syms[cnt++] = c ? c + 1 : tok;
		}
		a.link_create.attach_type = BPF_TRACE_KPROBE_MULTI;
		a.link_create.kprobe_multi.flags = m.kind == KRETPROBE_MULTI ? BPF_F_KPROBE_MULTI_RETURN : 0;
		a.link_create.kprobe_multi.cnt = cnt;
		a.link_create.kprobe_multi.syms = (uint64_t)(uintptr_t)syms;
		link_fd = sys_bpf(BPF_LINK_CREATE, &a);
		err = errno;
		break;
	}
	default:
		a.link_create.attach_type = m.kind == FENTRY ? BPF_TRACE_FENTRY
					  : m.kind == FEXIT  ? BPF_TRACE_FEXIT
							     : BPF_MODIFY_RETURN;
		link_fd = sys_bpf(BPF_LINK_CREATE, &a);
		err = errno;
	}
	if (link_fd < 0)
		goto fail;
	if (!name) {
		/* bpfN: N counts successful attaches, skipping names in use */
		do {
			snprintf(m.name, sizeof(m.name), "bpf%d", counter_next(".seq"));
		} while (!meta_read(m.name, &all[0]));
	}
	m.order = counter_next(".order");
	snprintf(pin, sizeof(pin), PIN_DIR "/link_%s", m.name);
	if (obj_pin(link_fd, pin))
		die("cannot pin %s: %s", pin, strerror(errno));
	meta_write(&m);
	printf("%s: %s %s attached\n", m.name, kind_names[m.kind], m.where);
	return 0;
fail:
	fflush(stdout);
	fprintf(stderr, "bpf_attach: %s %s: %s (%s)\n", typ, func_arg, strerror(err),
		errname(err, errbuf, sizeof(errbuf)));
	return 0;
}

/* -------------------------------------------------------------- detach */

static int cmd_detach(const char *name, int quiet)
{
	struct link_meta m;
	char pin[300], path[256];
	int fd;

	if (meta_read(name, &m)) {
		fprintf(stderr, "bpf_detach: no attachment '%s'\n", name);
		return 0;
	}
	snprintf(pin, sizeof(pin), PIN_DIR "/link_%s", name);
	/* Hold the link while unpinning, so that the last reference drops in
	 * close() and the link is released before this returns (an unpin alone
	 * frees it later, from a workqueue). */
	fd = obj_get(pin);
	unlink(pin);
	if (fd >= 0)
		close(fd);
	meta_path(path, sizeof(path), name);
	unlink(path);
	if (!quiet)
		printf("%s: detached\n", name);
	return 0;
}

/* --------------------------------------------------------- attachments */

static const char *program_text(const struct link_meta *m, char *buf, size_t len)
{
	if (m->has_override)
		snprintf(buf, len, "override %lld", m->override);
	else if (m->kind == FMOD_RET)
		snprintf(buf, len, "returns %lld", m->ret);
	else
		snprintf(buf, len, "-");
	return buf;
}

/* NAME TYPE TARGET PROGRAM HITS: the columns of the model's table a real
 * kernel can show (STATE and NOTE are the model's analysis). */
static int cmd_list(void)
{
	static struct link_meta all[MAX_TAG];
	static char cells[MAX_TAG + 1][5][512];
	int n, map_fd = log_map(), widths[5] = { 0 };
	const char *head[5] = { "NAME", "TYPE", "TARGET", "PROGRAM", "HITS" };

	n = meta_all(all, MAX_TAG);
	for (int c = 0; c < 5; c++)
		snprintf(cells[0][c], sizeof(cells[0][c]), "%s", head[c]);
	for (int i = 0; i < n; i++) {
		struct record r = { 0 };

		map_lookup(map_fd, HITS_BASE + all[i].tag, &r);
		snprintf(cells[i + 1][0], 512, "%.63s", all[i].name);
		snprintf(cells[i + 1][1], 512, "%s", kind_names[all[i].kind]);
		snprintf(cells[i + 1][2], 512, "%.511s", all[i].where);
		program_text(&all[i], cells[i + 1][3], 512);
		snprintf(cells[i + 1][4], 512, "%llu", (unsigned long long)r.tag);
	}
	for (int i = 0; i <= n; i++)
		for (int c = 0; c < 5; c++)
			if ((int)strlen(cells[i][c]) > widths[c])
				widths[c] = strlen(cells[i][c]);
	for (int i = 0; i <= n; i++)
		for (int c = 0; c < 5; c++)
			if (c < 4)
				printf("%-*s  ", widths[c], cells[i][c]);
			else
				printf("%s\n", cells[i][c]);
	return 0;
}

/* ----------------------------------------------------------------- call */

/* The single-record /proc files and the show function behind each. */
static const char *const proc_show[][2] = {
	{ "cmdline_proc_show", "/proc/cmdline" }, { "meminfo_proc_show", "/proc/meminfo" },
	{ "version_proc_show", "/proc/version" }, { "loadavg_proc_show", "/proc/loadavg" },
	{ "uptime_proc_show", "/proc/uptime" },
};

struct lp_func {
	char mod[64], obj[64], old[128], new_[128], output[256];
	long long ret;
};

/* LIVEPATCH_TABLE: "MOD OBJ OLD NEW RET OUTPUT..." per patched function
 * (written by the host from the module definitions). */
static int lp_table(struct lp_func *out, int max)
{
	FILE *f = fopen(LIVEPATCH_TABLE, "r");
	char line[1024];
	int n = 0;

	if (!f)
		return 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		struct lp_func *l = &out[n];
		int used = 0;

		if (sscanf(line, "%63s %63s %127s %127s %lld %n", l->mod, l->obj, l->old, l->new_, &l->ret, &used) < 5)
			continue;
		snprintf(l->output, sizeof(l->output), "%s", line + used);
		l->output[strcspn(l->output, "\n")] = 0;
		n++;
	}
	fclose(f);
	return n;
}

static int lp_enabled(const char *mod)
{
	char path[300], v = '0';
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/livepatch/%s/enabled", mod);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fread(&v, 1, 1, f) != 1)
		v = '0';
	fclose(f);
	return v == '1';
}

static long long sext32(uint64_t v)
{
	return (long long)(int32_t)(uint32_t)v;
}

/* fail_function's "times" (-2: no fail_function, or FUNC not injected);
 * it counts down each time should_fail() says yes, which tells a call
 * that fail_function made return early. */
#define FEI_DIR "/sys/kernel/debug/fail_function"

static long long fei_times(const char *func)
{
	char line[300];
	long long times = -2;
	int listed = 0;
	FILE *f = fopen(FEI_DIR "/inject", "r");

	if (!f)
		return -2;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (!strcmp(line, func))
			listed = 1;
	}
	fclose(f);
	f = listed ? fopen(FEI_DIR "/times", "r") : NULL;
	if (!f)
		return -2;
	if (fscanf(f, "%lld", &times) != 1)
		times = -2;
	fclose(f);
	return times;
}

static int cmd_call(const char *func_arg)
{
	char spec[256], path[300], errbuf[16];
	char *func, *mod;
	static char content[1 << 16];
	static struct link_meta all[MAX_TAG];
	static struct lp_func lps[256];
	size_t clen = 0;
	int map_fd, n, nlp, is_syscall = 0, body_seen = 0, fei_injected;
	long long result, fei_before;
	struct record before = { 0 }, after = { 0 };

	snprintf(spec, sizeof(spec), "%s", func_arg);
	mod = split_mod(spec, &func);
	path[0] = 0;
	if (mod) {
		snprintf(path, sizeof(path), "/proc/%s/%s", mod, func);
	} else if (!strcmp(func, "__x64_sys_syncfs")) {
		is_syscall = 1;
	} else {
		for (size_t i = 0; i < sizeof(proc_show) / sizeof(proc_show[0]); i++)
			if (!strcmp(func, proc_show[i][0]))
				snprintf(path, sizeof(path), "%s", proc_show[i][1]);
	}
	if (!is_syscall && !path[0]) {
		fprintf(stderr, "call: %s: no way to call it on a real kernel "
				"(a /proc show function, MOD:FUNC of a klpsim module, or __x64_sys_syncfs)\n",
			func_arg);
		return 1;
	}
	map_fd = log_map();
	n = meta_all(all, MAX_TAG);
	nlp = lp_table(lps, 256);
	load_kallsyms();
	map_lookup(map_fd, 0, &before);
	fei_before = fei_times(func);
	if (is_syscall) {
		result = syscall(__NR_syncfs, -1);
		if (result == -1)
			result = -errno;
		/* syncfs(-1) gives the original's -EBADF: its body is taken to
		 * have run when nothing else explains that (below) */
	} else {
		int fd = open(path, O_RDONLY);
		ssize_t r = 0;

		if (fd < 0) {
			fprintf(stderr, "call: %s: %s\n", path, strerror(errno));
			return 1;
		}
		result = 0;
		while (clen < sizeof(content) - 1 && (r = read(fd, content + clen, sizeof(content) - 1 - clen)) > 0)
			clen += r;
		if (r < 0)
			result = -errno;
		close(fd);
		content[clen] = 0;
		body_seen = clen > 0;
	}
	map_lookup(map_fd, 0, &after);
	/* times = -1 (no limit) does not count: such a call stays unexplained */
	fei_injected = fei_before > 0 && fei_times(func) < fei_before;

	/* the records of this call, in the order the programs ran */
	struct {
		const struct link_meta *m;
		struct record r;
	} ev[NR_LOG];
	int nev = 0;

	for (uint64_t s = before.tag; s < after.tag && nev < NR_LOG; s++) {
		struct record r;

		if (map_lookup(map_fd, 1 + (s % NR_LOG), &r))
			continue;
		for (int i = 0; i < n; i++)
			if ((uint64_t)all[i].tag == r.tag) {
				ev[nev].m = &all[i];
				ev[nev].r = r;
				nev++;
			}
	}

	printf("call %s from %s:%d\n", func_arg, "klpsim-bpf", getpid());
	/* entry, then the body's breakpoints, then the return hooks */
	/* which body ran, from what the caller saw */
	const char *skipped = NULL, *overridden = NULL, *fired_override = NULL;
	const struct lp_func *hit = NULL;
	int calls_orig = 0, undefined = 0;
	char text[600] = "";

	for (int i = 0; i < nev; i++) {
		const struct link_meta *m = ev[i].m;

		if (m->kind == FMOD_RET && m->ret)
			skipped = m->name;
		if (m->kind == FEXIT || (m->kind == FMOD_RET && !m->ret))
			calls_orig = 1; /* the trampoline calls the function */
		if (m->has_override) {
			fired_override = m->name;
			if (m->override == result && !body_seen)
				overridden = m->name;
		}
	}
	for (int i = 0; i < nlp && !skipped; i++) {
		const struct lp_func *l = &lps[i];
		size_t len = strlen(l->output);

		if (strcmp(l->old, func) || strcmp(l->obj, mod ? mod : "vmlinux") || !lp_enabled(l->mod))
			continue;
		/* a show replacement's line, or a syscall replacement's value */
		if (is_syscall ? l->ret == result : !strncmp(content, l->output, len) && content[len] == '\n')
			hit = l;
	}
	if (skipped) {
		snprintf(text, sizeof(text), "nothing: the trampoline skipped the call");
	} else if (hit) {
		snprintf(text, sizeof(text), "%s:%s (new_func of livepatch %s)", hit->mod, hit->new_, hit->mod);
	} else if (body_seen || (is_syscall && result == -EBADF)) {
		snprintf(text, sizeof(text), "%s:%s (the original)", mod ? mod : "vmlinux", func);
	} else if (overridden || fei_injected) {
		snprintf(text, sizeof(text), "just_return_func: overridden, no body ran");
	} else if (fired_override && calls_orig) {
		/* no body's value and not the override's: the trampoline called
		 * just_return_func, which returned whatever rax held */
		snprintf(text, sizeof(text), "just_return_func: overridden, no body ran");
		undefined = 1;
	} else {
		snprintf(text, sizeof(text), "? (no body the caller could see)");
	}

	/* fail_function's probe is taken to run first: it is the newest in an
	 * aggregate kprobe, and the programs of that kprobe do not run once it
	 * injects (aggr_pre_handler()) */
	if (fei_injected)
		printf("  fail_function on %s: injected %lld\n", func, result);
	for (int phase = 0; phase < 3; phase++) {
		if (phase == 1) {
			printf("  ran %s\n", text);
		}
		for (int i = 0; i < nev; i++) {
			const struct link_meta *m = ev[i].m;
			int ph = m->kind == KRETPROBE || m->kind == KRETPROBE_MULTI || m->kind == FEXIT ? 2
				 : m->body							    ? 1
												    : 0;
			const char *where = ev[i].r.ip ? ksym_name(ev[i].r.ip) : NULL;
			char target[600], *t, *c;

			if (ph != phase)
				continue;
			if (!where) {
				/* bpf_get_func_ip() says 0 off the entry: the attached function */
				snprintf(target, sizeof(target), "%s", m->where);
				t = target;
				t[strcspn(t, "+,")] = 0;
				c = strrchr(t, ':');
				where = c ? c + 1 : t;
			}
			printf("  %s %s on %s", kind_names[m->kind], m->name, where);
			if (m->has_override)
				printf(": bpf_override_return(%lld)", m->override);
			else if (m->kind == FMOD_RET)
				printf(": returned %lld", m->ret);
			else if (ph == 2)
			{
				long long v = is_syscall ? (long long)ev[i].r.value : sext32(ev[i].r.value);

				if (undefined && v == result)
					printf(": saw return <undefined>");
				else
					printf(": saw return %lld", v);
			}
			printf("\n");
		}
	}
	if (undefined)
		printf("  returned <undefined>\n");
	else
		printf("  returned %lld\n", result);
	(void)errbuf;
	return 0;
}

/* Close every link (reset.sh, between two scripts). */
static int cmd_reset(void)
{
	static struct link_meta all[MAX_TAG];
	int n = meta_all(all, MAX_TAG);

	for (int i = 0; i < n; i++)
		cmd_detach(all[i].name, 1);
	unlink(META_DIR "/.seq");
	unlink(META_DIR "/.order");
	unlink(MAP_PIN);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "attach"))
		return cmd_attach(argc - 2, argv + 2);
	if (argc == 3 && !strcmp(argv[1], "detach"))
		return cmd_detach(argv[2], 0);
	if (argc == 2 && !strcmp(argv[1], "list"))
		return cmd_list();
	if (argc == 2 && !strcmp(argv[1], "reset"))
		return cmd_reset();
	if (argc == 3 && !strcmp(argv[1], "call"))
		return cmd_call(argv[2]);
	die("usage: klpsim-bpf attach|detach|list|call ...");
}
