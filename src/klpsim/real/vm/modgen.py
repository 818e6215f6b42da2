"""Module definitions (model/schema.py) -> C source for a real kernel.

The generator reads the one schema the model reads, and accepts every
definition the model accepts: what the generated modules do on a real
kernel is what modules/definition.py builds for the model.

* **Livepatch**: one ``klp_patch`` with the definition's objects and
  ``klp_state``s. Each ``struct klp_patch`` field the kernel has
  (:class:`KernelCapabilities`) is an ``int`` module parameter (mode 0644,
  like the kernel's test modules) whose default is the definition's value,
  copied into the patch just before ``klp_enable_patch()``; the static
  ``klp_patch`` holds the definition's value too, so that a reader of the
  .ko (``klpsim inspect``) sees it. Fields the kernel lacks are ignored, as
  the model ignores them: Debian's kernels take ``replace``; the
  replace-set kernel (rskernel.py: 6.12 with the v2 series) takes
  ``replace_set`` instead, an ``int`` parameter copied into the u32
  ``patch.replace_set`` as v2 4/4's test modules do, and ignores
  ``replace`` as the model's replace-set profile does. Module init returns
  what ``klp_enable_patch()`` returns. A function the kernel does not have
  is the kernel's to refuse at load time (``livepatch: symbol 'X' not found
  in symbol table``), as the model refuses it. Each replacement follows
  the signature class of the function it replaces:

  - a /proc show function of vmlinux (:data:`PROC_SHOW`, and ``m_show``),
    or any function of a module object (klpsim's plain modules are made of
    show functions):
    ``int f(struct seq_file *m, void *v)``, which prints ``output`` and a
    newline (default ``"<MOD>: this has been live patched"``) and returns
    ``return``;
  - a syscall entry point ``__x64_sys_*``: ``long f(const struct pt_regs *)``
    returning ``return``;
  - any other function: a replacement that returns ``return``, with a
    comment saying that its signature is unknown.

* **Plain (target)**: every function ``F`` is a non-static ``noinline``
  seq_file show function, exported with ``EXPORT_SYMBOL_GPL``, behind
  ``/proc/MOD/F``; reading it gives ``MOD: F: original output``. Init logs
  ``MOD: MOD_init`` and exit ``MOD: MOD_exit`` (as the kernel's
  ``test_klp_mod_target`` does). ``[[ftrace_ops]]`` and ``[[kprobes]]``
  are registered in init after the /proc files (a failure fails the load)
  and unregistered in exit; each handler logs its hit
  (modules/definition.py documents the lines; the model logs the same).
  An ops' callback is ``klpsim_opsN_func``, the name enabled_functions
  shows (the schema keeps it out of ``functions``).

``error_injection`` entries become ``ALLOW_ERROR_INJECTION(F, TYPE)``.
All generated text is the project's own (GPL-2.0, like the kernel it links
against): ``MODULE_LICENSE("GPL")`` and, for livepatches,
``MODULE_INFO(livepatch, "Y")``. The generator's own C names start with
``__klpsim_``, which the schema keeps out of definitions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from klpsim.kernel.vmlinux import PROC_SHOW
from klpsim.model.schema import (
    FtraceOpsDef,
    FuncDef,
    LivepatchDef,
    ModuleDef,
    ObjectDef,
    TargetDef,
    load_definition,
)

__all__ = [
    "DEBIAN",
    "KernelCapabilities",
    "REPLACE_SET_KERNEL",
    "Signature",
    "TAINT_MODULE",
    "generate_file",
    "generate_module",
    "signature",
]


@dataclass(frozen=True)
class KernelCapabilities:
    """What a real kernel's ``struct klp_patch`` has, beyond objs and states."""

    patch_fields: tuple[str, ...]


DEBIAN = KernelCapabilities(patch_fields=("replace",))
"""Debian's 6.1 and 6.12: mainline's ``replace`` only."""
REPLACE_SET_KERNEL = KernelCapabilities(patch_fields=("replace_set",))
"""6.12 built with the replace_set v2 rules (rskernel.py): no ``replace``."""

# module_param() for each struct klp_patch field: the definition's value as
# the parameter's default. A kernel with another field adds one line here.
_PATCH_PARAMS: dict[str, Callable[[LivepatchDef], int]] = {
    "replace": lambda d: int(d.replace),
    "replace_set": lambda d: d.replace_set,
}


def _c_int(value: int) -> str:
    """*value* as an ``int`` initialiser: a u32 above INT_MAX wraps as C
    converts it (replace_set 4294967295 is the int -1)."""
    return f"(int){value}U" if value > 2**31 - 1 else str(value)


def _c_init(field: str, mod: LivepatchDef) -> str:
    """The static klp_patch's initialiser of *field* (``bool replace``)."""
    value = _PATCH_PARAMS[field](mod)
    if field == "replace":
        return "true" if value else "false"
    return str(value)


SYSCALL_PREFIX = "__x64_sys_"

# seq_file show functions of vmlinux beyond the single-record /proc files:
# m_show is static twice (sympos 1 kernel/module/procfs.c, 2 fs/namespace.c),
# one output line per module or mount while patched.
_SEQ_SHOW = frozenset(PROC_SHOW) | {"m_show"}


class Signature(Enum):
    """What the generator knows about a replaced function's C signature."""

    SHOW = "int (struct seq_file *, void *)"
    SYSCALL = "long (const struct pt_regs *)"
    UNKNOWN = "unknown"


def signature(obj: ObjectDef, func: FuncDef) -> Signature:
    """The signature class of the function *func* replaces."""
    if obj.name != "vmlinux" or func.old_name in _SEQ_SHOW:
        return Signature.SHOW
    if func.old_name.startswith(SYSCALL_PREFIX):
        return Signature.SYSCALL
    return Signature.UNKNOWN


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


def _replacement(mod: LivepatchDef, obj: ObjectDef, f: FuncDef) -> str:
    sig = signature(obj, f)
    if sig is Signature.SHOW:
        text = f.output if f.output is not None else mod.default_output
        return (
            f"static noinline int {f.new_name}(struct seq_file *m, void *v)\n"
            "{\n"
            f'\tseq_printf(m, "%s\\n", {_c_string(text)});\n'
            f"\treturn {f.ret};\n"
            "}\n"
        )
    if sig is Signature.SYSCALL:
        return (
            f"static noinline long {f.new_name}(const struct pt_regs *regs)\n"
            f"{{\n\treturn {f.ret};\n}}\n"
        )
    return (
        f"/* klpsim: the signature of {f.old_name} is unknown: this replacement\n"
        " * takes no arguments and only returns the definition's value. */\n"
        f"static noinline long {f.new_name}(void)\n"
        f"{{\n\treturn {f.ret};\n}}\n"
    )


def _head(mod: ModuleDef) -> list[str]:
    return [
        "// SPDX-License-Identifier: GPL-2.0",
        f"/* Generated by klpsim from {mod.name}.toml; do not edit. */",
        "",
        '#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt',
        "",
        "#include <linux/module.h>",
        "#include <linux/kernel.h>",
        "#include <linux/seq_file.h>",
        "#include <linux/error-injection.h>",
    ]


def _error_injection(mod: ModuleDef) -> list[str]:
    return [f"ALLOW_ERROR_INJECTION({fn}, {etype});" for fn, etype in mod.error_injection]


def generate_module(mod: ModuleDef, caps: KernelCapabilities = DEBIAN) -> str:
    """C source of *mod* for a kernel with *caps*."""
    if isinstance(mod, TargetDef):
        return _target(mod)
    return _livepatch(mod, caps)


def generate_file(path: Path, caps: KernelCapabilities = DEBIAN) -> tuple[ModuleDef, str]:
    """Read the definition *path* and generate its C source (DefinitionError
    for a definition the model refuses too)."""
    mod = load_definition(path)
    return mod, generate_module(mod, caps)


def _hooks_c(mod: TargetDef) -> list[str]:
    """The ftrace_ops and kprobes of a plain module, their handlers (one log
    line per hit) and __klpsim_register_hooks() / __klpsim_unregister_hooks()."""
    out: list[str] = []
    if mod.ftrace_ops:
        # x86's struct ftrace_regs wraps pt_regs; 6.12 reaches it through
        # arch_ftrace_regs() (struct __arch_ftrace_regs).
        out.append("#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)")
        out.append("#define __klpsim_regs_ip(fregs) (arch_ftrace_regs(fregs)->regs.ip)")
        out.append("#else")
        out.append("#define __klpsim_regs_ip(fregs) ((fregs)->regs.ip)")
        out.append("#endif\n")
    for i, ops in enumerate(mod.ftrace_ops):
        func = FtraceOpsDef.callback(i)
        out.append(
            f"static void notrace {func}(unsigned long ip, unsigned long parent_ip,\n"
            "\t\t\t\t     struct ftrace_ops *op, struct ftrace_regs *fregs)\n{\n"
            f'\tpr_info("ftrace_ops{i} %ps: regs ip %ps\\n", (void *)ip,\n'
            "\t\t(void *)__klpsim_regs_ip(fregs));\n}\n"
        )
        fl = " | ".join(f"FTRACE_OPS_FL_{f}" for f in ops.flags) or "0"
        out.append(f"static struct ftrace_ops __klpsim_ops{i} = {{")
        out.append(f"\t.func = {func},\n\t.flags = {fl},\n}};\n")
    for i, kp in enumerate(mod.kprobes):
        out.append(f"static int __klpsim_kp{i}_pre(struct kprobe *p, struct pt_regs *regs)\n{{")
        out.append(f'\tpr_info("kprobe{i} pre_handler %s\\n", p->symbol_name);\n\treturn 0;\n}}\n')
        if kp.post_handler:
            out.append(
                f"static void __klpsim_kp{i}_post(struct kprobe *p, struct pt_regs *regs,\n"
                "\t\t\t\tunsigned long flags)\n{"
            )
            out.append(f'\tpr_info("kprobe{i} post_handler %s\\n", p->symbol_name);\n}}\n')
        out.append(f"static struct kprobe __klpsim_kp{i} = {{")
        out.append(
            f"\t.symbol_name = {_c_string(kp.symbol)},\n\t.pre_handler = __klpsim_kp{i}_pre,"
        )
        if kp.post_handler:
            out.append(f"\t.post_handler = __klpsim_kp{i}_post,")
        out.append("};\n")
    nops, nkp = len(mod.ftrace_ops), len(mod.kprobes)
    if nops:
        out.append("static int __klpsim_nops;")
    if nkp:
        out.append("static int __klpsim_nkp;")
    out.append("\nstatic void __klpsim_unregister_hooks(void)\n{")
    if nkp:
        kps = ", ".join(f"&__klpsim_kp{i}" for i in range(nkp))
        out.append(f"\tstruct kprobe *kps[] = {{ {kps} }};")
    if nops:
        opss = ", ".join(f"&__klpsim_ops{i}" for i in range(nops))
        out.append(f"\tstruct ftrace_ops *ops[] = {{ {opss} }};")
    if nkp:
        out.append("\n\twhile (__klpsim_nkp > 0)\n\t\tunregister_kprobe(kps[--__klpsim_nkp]);")
    if nops:
        out.append("\twhile (__klpsim_nops > 0) {")
        out.append("\t\tunregister_ftrace_function(ops[--__klpsim_nops]);")
        out.append("\t\tftrace_free_filter(ops[__klpsim_nops]);\n\t}")
    out.append("}\n")
    out.append("static int __klpsim_register_hooks(void)\n{")
    out.append("\tint ret;\n")
    for i, ops in enumerate(mod.ftrace_ops):
        for j, fn in enumerate(ops.funcs):
            cond = "" if j == 0 else "if (!ret)\n\t\t"
            out.append(
                f"\t{cond}ret = ftrace_set_filter(&__klpsim_ops{i}, "
                f"(unsigned char *){_c_string(fn)}, {len(fn)}, 0);"
            )
        out.append(f"\tif (!ret)\n\t\tret = register_ftrace_function(&__klpsim_ops{i});")
        out.append(
            f"\tif (ret) {{\n\t\tftrace_free_filter(&__klpsim_ops{i});\n\t\tgoto fail;\n\t}}"
        )
        out.append("\t__klpsim_nops++;")
    for i in range(nkp):
        out.append(f"\tret = register_kprobe(&__klpsim_kp{i});")
        out.append("\tif (ret)\n\t\tgoto fail;\n\t__klpsim_nkp++;")
    out.append("\treturn 0;\nfail:\n\t__klpsim_unregister_hooks();\n\treturn ret;\n}\n")
    return out


def _target(mod: TargetDef) -> str:
    hooks = bool(mod.ftrace_ops or mod.kprobes)
    body = _head(mod) + ["#include <linux/proc_fs.h>"]
    if hooks:
        body += ["#include <linux/ftrace.h>", "#include <linux/kprobes.h>"]
        body += ["#include <linux/string.h>", "#include <linux/version.h>"]
    body.append("")
    for fn in mod.functions:
        body.append(
            f"noinline int {fn}(struct seq_file *m, void *v)\n"
            "{\n"
            f'\tseq_printf(m, "%s\\n", {_c_string(f"{mod.name}: {fn}: original output")});\n'
            "\treturn 0;\n"
            "}\n"
        )
        body.append(f"EXPORT_SYMBOL_GPL({fn});\n")
    body += _error_injection(mod)
    body.append("static struct proc_dir_entry *__klpsim_dir;\n")
    if hooks:
        body += _hooks_c(mod)
    body.append(f"static int __init {mod.name}_init(void)\n{{")
    if hooks:
        body.append("\tint ret;\n")
    body.append("\t__klpsim_dir = proc_mkdir(KBUILD_MODNAME, NULL);")
    body.append("\tif (!__klpsim_dir)\n\t\treturn -ENOMEM;")
    for fn in mod.functions:
        body.append(f'\tif (!proc_create_single("{fn}", 0444, __klpsim_dir, {fn})) {{')
        body.append("\t\tproc_remove(__klpsim_dir);\n\t\treturn -ENOMEM;\n\t}")
    if hooks:
        body.append("\tret = __klpsim_register_hooks();")
        body.append("\tif (ret) {\n\t\tproc_remove(__klpsim_dir);\n\t\treturn ret;\n\t}")
    body.append('\tpr_info("%s\\n", __func__);\n\treturn 0;\n}\n')
    body.append(f"static void __exit {mod.name}_exit(void)\n{{")
    if hooks:
        body.append("\t__klpsim_unregister_hooks();")
    body.append('\tproc_remove(__klpsim_dir);\n\tpr_info("%s\\n", __func__);\n}\n')
    body.append(f"module_init({mod.name}_init);\nmodule_exit({mod.name}_exit);")
    body.append('MODULE_LICENSE("GPL");')
    body.append(f'MODULE_DESCRIPTION("klpsim target module {mod.name}");')
    return "\n".join(body) + "\n"


def _livepatch(mod: LivepatchDef, caps: KernelCapabilities) -> str:
    body = _head(mod) + ["#include <linux/ptrace.h>", "#include <linux/livepatch.h>", ""]
    fields = [f for f in _PATCH_PARAMS if f in caps.patch_fields]
    for field in fields:
        var = f"__klpsim_{field}"
        body.append(f"static int {var} = {_c_int(_PATCH_PARAMS[field](mod))};")
        body.append(f"module_param_named({field}, {var}, int, 0644);")
        body.append(f'MODULE_PARM_DESC({field}, "klp_patch.{field} (default: from TOML)");')
    body.append("")
    for obj in mod.objects:
        for f in obj.funcs:
            body.append(_replacement(mod, obj, f))
    body += _error_injection(mod)
    objs = []
    for i, obj in enumerate(mod.objects):
        body.append(f"static struct klp_func __klpsim_funcs_{i}[] = {{")
        for f in obj.funcs:
            body.append(
                f"\t{{ .old_name = {_c_string(f.old_name)}, .new_func = {f.new_name}, "
                f".old_sympos = {f.old_sympos}UL }},"
            )
        body.append("\t{ }\n};\n")
        oname = "NULL" if obj.name == "vmlinux" else _c_string(obj.name)
        objs.append(f"\t{{ .name = {oname}, .funcs = __klpsim_funcs_{i} }},")
    body.append("static struct klp_object __klpsim_objs[] = {")
    body.extend(objs)
    body.append("\t{ }\n};\n")
    states = ""
    if mod.states:
        body.append("static struct klp_state __klpsim_states[] = {")
        for st in mod.states:
            body.append(f"\t{{ .id = {st.id}UL, .version = {st.version}U }},")
        body.append("\t{ }\n};\n")
        states = "\t.states = __klpsim_states,\n"
    # The static patch holds the definition's values too (the parameters'
    # defaults), so that a reader of the .ko (klpsim inspect) sees them.
    statics = "".join(f"\t.{field} = {_c_init(field, mod)},\n" for field in fields)
    body.append(
        "static struct klp_patch __klpsim_patch = {\n"
        "\t.mod = THIS_MODULE,\n"
        "\t.objs = __klpsim_objs,\n"
        f"{states}"
        f"{statics}"
        "};\n"
    )
    body.append("static int __init __klpsim_init(void)\n{")
    for field in fields:
        body.append(f"\t__klpsim_patch.{field} = __klpsim_{field};")
    body.append("\treturn klp_enable_patch(&__klpsim_patch);\n}\n")
    body.append("static void __exit __klpsim_exit(void)\n{\n}\n")
    body.append("module_init(__klpsim_init);\nmodule_exit(__klpsim_exit);")
    body.append('MODULE_LICENSE("GPL");')
    body.append('MODULE_INFO(livepatch, "Y");')
    body.append(f'MODULE_DESCRIPTION("klpsim livepatch {mod.name}");')
    return "\n".join(body) + "\n"
