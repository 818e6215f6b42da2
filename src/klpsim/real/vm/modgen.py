"""klpsim TOML module definitions -> C source for a real kernel.

The definition format is fixed by spec/scenarios.md ("Modules").  What the
generated modules do on a real kernel (the model's modules must match):

* **Livepatch** ``MOD.toml`` with ``livepatch = true``: one ``klp_patch`` with
  the TOML's objects and ``klp_state``s.  ``replace`` is an ``int`` module
  parameter (mode 0644, like the kernel's test modules), copied into
  ``patch.replace`` just before ``klp_enable_patch()``; the TOML value is its
  default.  Module init returns what ``klp_enable_patch()`` returns.
  Each replacement is a seq_file show function that writes ``output`` and a
  newline (``output`` defaults to ``"<MOD>: this has been live patched"``,
  the test modules' text).  That fixes which functions can be patched:

  - vmlinux: the single-record /proc show functions in :data:`VMLINUX_SHOW`
    (``/proc/cmdline``, ``/proc/meminfo``, ``/proc/version``, ...);
  - a module object: the functions of a klpsim plain module (below).

* **Plain (target)** ``MOD.toml`` with ``functions = [...]``: every function
  ``F`` is a non-static ``noinline`` seq_file show function, exported with
  ``EXPORT_SYMBOL_GPL``, behind ``/proc/MOD/F``; reading it gives
  ``MOD: F: original output``.  Init logs ``MOD: MOD_init`` and exit
  ``MOD: MOD_exit`` (as the kernel's ``test_klp_mod_target`` does).
  ``[[ftrace_ops]]`` (``funcs``, ``flags``) and ``[[kprobes]]`` (``symbol``,
  ``post_handler``) are registered in init after the /proc files (a failure
  fails the load) and unregistered in exit; each handler logs its hit
  (modules/definition.py documents the lines; the model logs the same).

``replace_set`` (the 2026 replace-set series) and ``replaceable`` (RFC of
2026-04-02) exist on no Debian kernel; a definition that sets them to a
non-default value is refused for real kernels.

All generated text is the project's own (GPL-2.0, like the kernel it links
against): ``MODULE_LICENSE("GPL")`` and, for livepatches,
``MODULE_INFO(livepatch, "Y")``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import VMError

__all__ = [
    "VMLINUX_SHOW",
    "LivepatchFunc",
    "LivepatchObject",
    "ModuleDef",
    "TAINT_MODULE",
    "generate_module",
    "load_definition",
    "parse_definition",
]

#: vmlinux functions a generated livepatch may replace, and the /proc file
#: each one produces.  All are ``int f(struct seq_file *m, void *v)`` show
#: functions registered with ``proc_create_single()``.
VMLINUX_SHOW = {
    "cmdline_proc_show": "/proc/cmdline",
    "meminfo_proc_show": "/proc/meminfo",
    "version_proc_show": "/proc/version",
    "loadavg_proc_show": "/proc/loadavg",
    "uptime_proc_show": "/proc/uptime",
}

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODNAME = re.compile(r"^[a-z0-9_]+$")

#: A module that only taints: loaded once per boot so that the once-only
#: taint notices do not land in the first script's log.
TAINT_MODULE = """\
// SPDX-License-Identifier: GPL-2.0
/* klpsim: an empty out-of-tree "livepatch" module, loaded once at boot. */
#include <linux/module.h>

static int __init klpsim_taint_init(void)
{
\treturn 0;
}

static void __exit klpsim_taint_exit(void)
{
}

module_init(klpsim_taint_init);
module_exit(klpsim_taint_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
"""


@dataclass
class LivepatchFunc:
    old_name: str
    new_name: str
    old_sympos: int = 0
    output: str | None = None


@dataclass
class LivepatchObject:
    name: str
    """``vmlinux`` or a module name."""
    funcs: list[LivepatchFunc] = field(default_factory=list)


@dataclass
class ModuleDef:
    name: str
    path: Path
    livepatch: bool
    replace: bool = False
    replace_set: int = 0
    replaceable: bool = False
    objects: list[LivepatchObject] = field(default_factory=list)
    states: list[tuple[int, int]] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    ftrace_ops: list[tuple[list[str], list[str]]] = field(default_factory=list)
    """(funcs, flags) of each ``[[ftrace_ops]]``."""
    kprobes: list[tuple[str, bool]] = field(default_factory=list)
    """(symbol, post_handler) of each ``[[kprobes]]``."""


def _bad(path: Path, key: str, why: str) -> VMError:
    return VMError(f"{path}: {key}: {why}")


def _take(d: dict, key: str, typ, path: Path, where: str, default=None):
    if key not in d:
        return default
    v = d[key]
    if typ is int and isinstance(v, bool) or not isinstance(v, typ):
        raise _bad(path, where + key, f"expected {typ.__name__}, got {type(v).__name__}")
    return v


def parse_definition(name: str, path: Path, data: dict) -> ModuleDef:
    """Check ``data`` (a parsed TOML table) against the definition format."""
    if not _MODNAME.match(name):
        raise _bad(path, "name", f"module name {name!r} must be [a-z0-9_]+")
    lp = _take(data, "livepatch", bool, path, "", False)
    if lp:
        allowed = {"livepatch", "replace", "replace_set", "replaceable", "objects", "states"}
        for k in data:
            if k not in allowed:
                raise _bad(path, k, "unknown key for a livepatch module")
        m = ModuleDef(name, path, True)
        m.replace = _take(data, "replace", bool, path, "", False)
        m.replace_set = _take(data, "replace_set", int, path, "", 0)
        m.replaceable = _take(data, "replaceable", bool, path, "", False)
        objs = _take(data, "objects", list, path, "", [])
        for i, o in enumerate(objs):
            where = f"objects[{i}]."
            if not isinstance(o, dict):
                raise _bad(path, f"objects[{i}]", "expected a table")
            for k in o:
                if k not in ("name", "funcs"):
                    raise _bad(path, where + k, "unknown key")
            oname = _take(o, "name", str, path, where, None)
            if not oname:
                raise _bad(path, where + "name", "missing")
            obj = LivepatchObject(oname)
            for j, f in enumerate(_take(o, "funcs", list, path, where, [])):
                fw = f"{where}funcs[{j}]."
                if not isinstance(f, dict):
                    raise _bad(path, fw.rstrip("."), "expected a table")
                for k in f:
                    if k not in ("old_name", "new_name", "old_sympos", "output"):
                        raise _bad(path, fw + k, "unknown key")
                old = _take(f, "old_name", str, path, fw, None)
                if not old or not _IDENT.match(old):
                    raise _bad(path, fw + "old_name", "missing or not a C identifier")
                new = _take(f, "new_name", str, path, fw, "livepatch_" + old)
                if not _IDENT.match(new):
                    raise _bad(path, fw + "new_name", f"{new!r} is not a C identifier")
                pos = _take(f, "old_sympos", int, path, fw, 0)
                if pos < 0:
                    raise _bad(path, fw + "old_sympos", "must be >= 0")
                out = _take(f, "output", str, path, fw, None)
                if out is not None and "\n" in out:
                    raise _bad(path, fw + "output", "must be one line")
                obj.funcs.append(LivepatchFunc(old, new, pos, out))
            m.objects.append(obj)
        for i, s in enumerate(_take(data, "states", list, path, "", [])):
            where = f"states[{i}]."
            if not isinstance(s, dict):
                raise _bad(path, f"states[{i}]", "expected a table")
            for k in s:
                if k not in ("id", "version"):
                    raise _bad(path, where + k, "unknown key")
            sid = _take(s, "id", int, path, where, None)
            if sid is None:
                raise _bad(path, where + "id", "missing")
            m.states.append((sid, _take(s, "version", int, path, where, 0)))
        news = [f.new_name for o in m.objects for f in o.funcs]
        dup = {n for n in news if news.count(n) > 1}
        if dup:
            raise _bad(path, "objects", f"new_name {sorted(dup)[0]!r} used twice")
        return m
    for k in data:
        if k not in ("livepatch", "functions", "ftrace_ops", "kprobes"):
            raise _bad(path, k, "unknown key for a plain module")
    hooks = "ftrace_ops" in data or "kprobes" in data
    funcs = _take(data, "functions", list, path, "", [] if hooks else None)
    if funcs is None:
        raise _bad(path, "functions", "missing (a plain module lists its functions)")
    for i, fn in enumerate(funcs):
        if not isinstance(fn, str) or not _IDENT.match(fn):
            raise _bad(path, f"functions[{i}]", f"{fn!r} is not a C identifier")
    m = ModuleDef(name, path, False, functions=list(funcs))
    for i, t in enumerate(_take(data, "ftrace_ops", list, path, "", [])):
        where = f"ftrace_ops[{i}]."
        if not isinstance(t, dict):
            raise _bad(path, f"ftrace_ops[{i}]", "expected a table")
        for k in t:
            if k not in ("funcs", "flags"):
                raise _bad(path, where + k, "unknown key")
        ofuncs = _take(t, "funcs", list, path, where, [])
        if not ofuncs or not all(isinstance(f, str) and _IDENT.match(f) for f in ofuncs):
            raise _bad(path, where + "funcs", "must list C identifiers (at least one)")
        flags = _take(t, "flags", list, path, where, [])
        for f in flags:
            if f not in ("SAVE_REGS", "IPMODIFY"):
                raise _bad(path, where + "flags", f"{f!r} is not SAVE_REGS or IPMODIFY")
        m.ftrace_ops.append((list(ofuncs), list(flags)))
    for i, t in enumerate(_take(data, "kprobes", list, path, "", [])):
        where = f"kprobes[{i}]."
        if not isinstance(t, dict):
            raise _bad(path, f"kprobes[{i}]", "expected a table")
        for k in t:
            if k not in ("symbol", "post_handler"):
                raise _bad(path, where + k, "unknown key")
        sym = _take(t, "symbol", str, path, where, None)
        if not sym or not _IDENT.match(sym):
            raise _bad(path, where + "symbol", "missing or not a C identifier")
        m.kprobes.append((sym, _take(t, "post_handler", bool, path, where, False)))
    return m


def load_definition(path: Path) -> ModuleDef:
    """Read and check ``MOD.toml``; the module's name is the file's stem."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise VMError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise VMError(f"{path}: {e}") from None
    return parse_definition(path.stem, path, data)


def _c_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        else:
            out.extend(f"\\{b:03o}" for b in ch.encode())
    return '"' + "".join(out) + '"'


def _show(fname: str, text_expr: str, static: bool) -> str:
    return (
        f"{'static ' if static else ''}noinline int {fname}(struct seq_file *m, void *v)\n"
        "{\n"
        f'\tseq_printf(m, "%s\\n", {text_expr});\n'
        "\treturn 0;\n"
        "}\n"
    )


def _hooks_c(mod: ModuleDef) -> list[str]:
    """The ftrace_ops and kprobes of a plain module, their handlers (one log
    line per hit) and klpsim_register_hooks() / klpsim_unregister_hooks()."""
    out: list[str] = []
    if mod.ftrace_ops:
        # x86's struct ftrace_regs wraps pt_regs; 6.12 reaches it through
        # arch_ftrace_regs() (struct __arch_ftrace_regs).
        out.append("#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)")
        out.append("#define klpsim_regs_ip(fregs) (arch_ftrace_regs(fregs)->regs.ip)")
        out.append("#else")
        out.append("#define klpsim_regs_ip(fregs) ((fregs)->regs.ip)")
        out.append("#endif\n")
    for i, (_, flags) in enumerate(mod.ftrace_ops):
        out.append(
            f"static void notrace klpsim_ops{i}_func(unsigned long ip, unsigned long parent_ip,\n"
            "\t\t\t\t     struct ftrace_ops *op, struct ftrace_regs *fregs)\n{\n"
            f'\tpr_info("ftrace_ops{i} %ps: regs ip %ps\\n", (void *)ip,\n'
            "\t\t(void *)klpsim_regs_ip(fregs));\n}\n"
        )
        fl = " | ".join(f"FTRACE_OPS_FL_{f}" for f in flags) or "0"
        out.append(f"static struct ftrace_ops klpsim_ops{i} = {{")
        out.append(f"\t.func = klpsim_ops{i}_func,\n\t.flags = {fl},\n}};\n")
    for i, (sym, post) in enumerate(mod.kprobes):
        out.append(f"static int klpsim_kp{i}_pre(struct kprobe *p, struct pt_regs *regs)\n{{")
        out.append(f'\tpr_info("kprobe{i} pre_handler %s\\n", p->symbol_name);\n\treturn 0;\n}}\n')
        if post:
            out.append(
                f"static void klpsim_kp{i}_post(struct kprobe *p, struct pt_regs *regs,\n"
                "\t\t\t      unsigned long flags)\n{"
            )
            out.append(f'\tpr_info("kprobe{i} post_handler %s\\n", p->symbol_name);\n}}\n')
        out.append(f"static struct kprobe klpsim_kp{i} = {{")
        out.append(f'\t.symbol_name = "{sym}",\n\t.pre_handler = klpsim_kp{i}_pre,')
        if post:
            out.append(f"\t.post_handler = klpsim_kp{i}_post,")
        out.append("};\n")
    nops, nkp = len(mod.ftrace_ops), len(mod.kprobes)
    if nops:
        out.append("static int klpsim_nops;")
    if nkp:
        out.append("static int klpsim_nkp;")
    out.append("\nstatic void klpsim_unregister_hooks(void)\n{")
    if nkp:
        kps = ", ".join(f"&klpsim_kp{i}" for i in range(nkp))
        out.append(f"\tstruct kprobe *kps[] = {{ {kps} }};")
    if nops:
        ops = ", ".join(f"&klpsim_ops{i}" for i in range(nops))
        out.append(f"\tstruct ftrace_ops *ops[] = {{ {ops} }};")
    if nkp:
        out.append("\n\twhile (klpsim_nkp > 0)\n\t\tunregister_kprobe(kps[--klpsim_nkp]);")
    if nops:
        out.append("\twhile (klpsim_nops > 0) {")
        out.append("\t\tunregister_ftrace_function(ops[--klpsim_nops]);")
        out.append("\t\tftrace_free_filter(ops[klpsim_nops]);\n\t}")
    out.append("}\n")
    out.append("static int klpsim_register_hooks(void)\n{")
    if not nops and not nkp:
        out.append("\treturn 0;\n}\n")
        return out
    out.append("\tint ret;\n")
    for i, (funcs, _) in enumerate(mod.ftrace_ops):
        for j, fn in enumerate(funcs):
            cond = "" if j == 0 else "if (!ret)\n\t\t"
            out.append(
                f'\t{cond}ret = ftrace_set_filter(&klpsim_ops{i}, (unsigned char *)"{fn}", '
                f"{len(fn)}, 0);"
            )
        out.append(f"\tif (!ret)\n\t\tret = register_ftrace_function(&klpsim_ops{i});")
        out.append(f"\tif (ret) {{\n\t\tftrace_free_filter(&klpsim_ops{i});\n\t\tgoto fail;\n\t}}")
        out.append("\tklpsim_nops++;")
    for i in range(nkp):
        out.append(f"\tret = register_kprobe(&klpsim_kp{i});")
        out.append("\tif (ret)\n\t\tgoto fail;\n\tklpsim_nkp++;")
    out.append("\treturn 0;\nfail:\n\tklpsim_unregister_hooks();\n\treturn ret;\n}\n")
    return out


def check_vmlinux_funcs(mod: ModuleDef, symbols: dict[str, int] | None, kver: str) -> None:
    """Refuse vmlinux functions this kernel lacks or that cannot be replaced."""
    for obj in mod.objects:
        if obj.name != "vmlinux":
            continue
        for f in obj.funcs:
            if symbols is not None:
                n = symbols.get(f.old_name, 0)
                if n == 0:
                    raise VMError(
                        f"{mod.path}: vmlinux has no function {f.old_name!r} on {kver} "
                        "(checked against the kernel's symbol table)"
                    )
            if f.old_name not in VMLINUX_SHOW:
                raise VMError(
                    f"{mod.path}: cannot generate a replacement for vmlinux function "
                    f"{f.old_name!r} (supported: {', '.join(VMLINUX_SHOW)})"
                )


def generate_module(mod: ModuleDef, symbols: dict[str, int] | None, kver: str) -> str:
    """C source of ``mod`` for a Debian kernel (``kver``)."""
    head = [
        "// SPDX-License-Identifier: GPL-2.0",
        f"/* Generated by klpsim from {mod.path.name}; do not edit. */",
        "",
        '#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt',
        "",
        "#include <linux/module.h>",
        "#include <linux/kernel.h>",
        "#include <linux/seq_file.h>",
    ]
    if not mod.livepatch:
        body = head + ["#include <linux/proc_fs.h>"]
        if mod.ftrace_ops or mod.kprobes:
            body += ["#include <linux/ftrace.h>", "#include <linux/kprobes.h>"]
            body += ["#include <linux/string.h>", "#include <linux/version.h>"]
        body.append("")
        for fn in mod.functions:
            body.append(_show(fn, _c_string(f"{mod.name}: {fn}: original output"), False))
            body.append(f"EXPORT_SYMBOL_GPL({fn});\n")
        body.append("static struct proc_dir_entry *klpsim_dir;\n")
        body += _hooks_c(mod)
        body.append(f"static int __init {mod.name}_init(void)\n{{")
        body.append("\tint ret;\n")
        body.append("\tklpsim_dir = proc_mkdir(KBUILD_MODNAME, NULL);")
        body.append("\tif (!klpsim_dir)\n\t\treturn -ENOMEM;")
        for fn in mod.functions:
            body.append(f'\tif (!proc_create_single("{fn}", 0444, klpsim_dir, {fn})) {{')
            body.append("\t\tproc_remove(klpsim_dir);\n\t\treturn -ENOMEM;\n\t}")
        body.append("\tret = klpsim_register_hooks();")
        body.append("\tif (ret) {\n\t\tproc_remove(klpsim_dir);\n\t\treturn ret;\n\t}")
        body.append('\tpr_info("%s\\n", __func__);\n\treturn 0;\n}\n')
        body.append(f"static void __exit {mod.name}_exit(void)\n{{")
        body.append("\tklpsim_unregister_hooks();")
        body.append('\tproc_remove(klpsim_dir);\n\tpr_info("%s\\n", __func__);\n}\n')
        body.append(f"module_init({mod.name}_init);\nmodule_exit({mod.name}_exit);")
        body.append('MODULE_LICENSE("GPL");')
        body.append(f'MODULE_DESCRIPTION("klpsim target module {mod.name}");')
        return "\n".join(body) + "\n"

    if mod.replace_set:
        raise VMError(f"{mod.path}: replace_set: Debian kernels have no replace sets ({kver})")
    if mod.replaceable:
        raise VMError(f"{mod.path}: replaceable: Debian kernels have no such field ({kver})")
    check_vmlinux_funcs(mod, symbols, kver)
    body = head + ["#include <linux/livepatch.h>", ""]
    body.append(f"static int replace = {int(mod.replace)};")
    body.append("module_param(replace, int, 0644);")
    body.append('MODULE_PARM_DESC(replace, "replace all other livepatches (default: from TOML)");')
    body.append("")
    for obj in mod.objects:
        for f in obj.funcs:
            text = f.output if f.output is not None else f"{mod.name}: this has been live patched"
            body.append(_show(f.new_name, _c_string(text), True))
    objs = []
    for i, obj in enumerate(mod.objects):
        body.append(f"static struct klp_func klpsim_funcs_{i}[] = {{")
        for f in obj.funcs:
            body.append(
                f'\t{{ .old_name = "{f.old_name}", .new_func = {f.new_name}, '
                f".old_sympos = {f.old_sympos} }},"
            )
        body.append("\t{ }\n};\n")
        oname = "NULL" if obj.name == "vmlinux" else f'"{obj.name}"'
        objs.append(f"\t{{ .name = {oname}, .funcs = klpsim_funcs_{i} }},")
    body.append("static struct klp_object klpsim_objs[] = {")
    body.extend(objs)
    body.append("\t{ }\n};\n")
    states = ""
    if mod.states:
        body.append("static struct klp_state klpsim_states[] = {")
        for sid, ver in mod.states:
            body.append(f"\t{{ .id = {sid}, .version = {ver} }},")
        body.append("\t{ }\n};\n")
        states = "\t.states = klpsim_states,\n"
    body.append(
        "static struct klp_patch klpsim_patch = {\n"
        "\t.mod = THIS_MODULE,\n"
        "\t.objs = klpsim_objs,\n"
        f"{states}"
        "};\n"
    )
    body.append(f"static int __init {mod.name}_init(void)\n{{")
    body.append("\tklpsim_patch.replace = replace;")
    body.append("\treturn klp_enable_patch(&klpsim_patch);\n}\n")
    body.append(f"static void __exit {mod.name}_exit(void)\n{{\n}}\n")
    body.append(f"module_init({mod.name}_init);\nmodule_exit({mod.name}_exit);")
    body.append('MODULE_LICENSE("GPL");')
    body.append('MODULE_INFO(livepatch, "Y");')
    body.append(f'MODULE_DESCRIPTION("klpsim livepatch {mod.name}");')
    return "\n".join(body) + "\n"
