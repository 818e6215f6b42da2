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

On the replace-set kernel (rskernel.py: 6.12 with the v2 series) ``struct
klp_patch`` has ``replace_set`` instead of ``replace``, so the parameter is
an ``int replace_set`` (0644, the TOML value as default) copied into
``patch.replace_set``, as v2 4/4 does in the kernel's test modules.
``replace_set`` exists on no Debian kernel, ``replace`` not on the
replace-set kernel, and ``replaceable`` (RFC of 2026-04-02) on none; a
definition that sets a field the kernel lacks to a non-default value is
refused.

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
    "check_patch_fields",
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
    # A static name twice in vmlinux (sympos 1 kernel/module/procfs.c, 2
    # fs/namespace.c): one output line per module or mount while patched.
    "m_show": "/proc/modules, /proc/mounts",
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
        if k not in ("livepatch", "functions"):
            raise _bad(path, k, "unknown key for a plain module")
    funcs = _take(data, "functions", list, path, "", None)
    if funcs is None:
        raise _bad(path, "functions", "missing (a plain module lists its functions)")
    for i, fn in enumerate(funcs):
        if not isinstance(fn, str) or not _IDENT.match(fn):
            raise _bad(path, f"functions[{i}]", f"{fn!r} is not a C identifier")
    return ModuleDef(name, path, False, functions=list(funcs))


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


def check_patch_fields(mod: ModuleDef, patch_fields: tuple[str, ...], kver: str) -> None:
    """Refuse a definition that sets a ``struct klp_patch`` field the kernel lacks."""
    if "replace_set" not in patch_fields and mod.replace_set:
        raise VMError(f"{mod.path}: replace_set: Debian kernels have no replace sets ({kver})")
    if "replace" not in patch_fields and mod.replace:
        raise VMError(f"{mod.path}: replace: {kver} has replace sets (use replace_set)")
    if not 0 <= mod.replace_set < 2**32:
        raise VMError(f"{mod.path}: replace_set: {mod.replace_set} is not an unsigned int")
    if mod.replaceable:
        raise VMError(f"{mod.path}: replaceable: Debian kernels have no such field ({kver})")


def generate_module(
    mod: ModuleDef,
    symbols: dict[str, int] | None,
    kver: str,
    patch_fields: tuple[str, ...] = ("replace",),
) -> str:
    """C source of ``mod`` for the kernel ``kver``, whose ``struct klp_patch``
    has ``patch_fields`` (``replace`` on Debian's, ``replace_set`` on the
    replace-set kernel)."""
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
        body = head + ["#include <linux/proc_fs.h>", ""]
        for fn in mod.functions:
            body.append(_show(fn, _c_string(f"{mod.name}: {fn}: original output"), False))
            body.append(f"EXPORT_SYMBOL_GPL({fn});\n")
        body.append("static struct proc_dir_entry *klpsim_dir;\n")
        body.append(f"static int __init {mod.name}_init(void)\n{{")
        body.append("\tklpsim_dir = proc_mkdir(KBUILD_MODNAME, NULL);")
        body.append("\tif (!klpsim_dir)\n\t\treturn -ENOMEM;")
        for fn in mod.functions:
            body.append(f'\tif (!proc_create_single("{fn}", 0444, klpsim_dir, {fn})) {{')
            body.append("\t\tproc_remove(klpsim_dir);\n\t\treturn -ENOMEM;\n\t}")
        body.append('\tpr_info("%s\\n", __func__);\n\treturn 0;\n}\n')
        body.append(f"static void __exit {mod.name}_exit(void)\n{{")
        body.append('\tproc_remove(klpsim_dir);\n\tpr_info("%s\\n", __func__);\n}\n')
        body.append(f"module_init({mod.name}_init);\nmodule_exit({mod.name}_exit);")
        body.append('MODULE_LICENSE("GPL");')
        body.append(f'MODULE_DESCRIPTION("klpsim target module {mod.name}");')
        return "\n".join(body) + "\n"

    check_patch_fields(mod, patch_fields, kver)
    check_vmlinux_funcs(mod, symbols, kver)
    body = head + ["#include <linux/livepatch.h>", ""]
    if "replace_set" in patch_fields:
        # An int parameter, as in v2 4/4's test modules: the u32 field takes
        # it as C converts (replace_set=-1 is set 4294967295).
        field, value = "replace_set", str(mod.replace_set)
        if mod.replace_set > 2**31 - 1:
            value = f"(int){mod.replace_set}U"
        desc = "replace set of this livepatch (default: from TOML)"
    else:
        field, value = "replace", str(int(mod.replace))
        desc = "replace all other livepatches (default: from TOML)"
    body.append(f"static int {field} = {value};")
    body.append(f"module_param({field}, int, 0644);")
    body.append(f'MODULE_PARM_DESC({field}, "{desc}");')
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
    body.append(f"\tklpsim_patch.{field} = {field};")
    body.append("\treturn klp_enable_patch(&klpsim_patch);\n}\n")
    body.append(f"static void __exit {mod.name}_exit(void)\n{{\n}}\n")
    body.append(f"module_init({mod.name}_init);\nmodule_exit({mod.name}_exit);")
    body.append('MODULE_LICENSE("GPL");')
    body.append('MODULE_INFO(livepatch, "Y");')
    body.append(f'MODULE_DESCRIPTION("klpsim livepatch {mod.name}");')
    return "\n".join(body) + "\n"
