"""sosreports and SUSE supportconfigs read as host snapshots.

Both already collect part of a host's livepatch state; this module takes
what they hold and names what they lack (see docs/snapshot.md for the
sources).

sosreport (sos 4.x, sos/report/plugins):
  * kernel plugin: copies ``/sys/kernel/livepatch/*`` (with attribute
    values), ``/proc/modules``, ``/sys/module/*/refcnt``, ``/proc/kallsyms``,
    ``/sys/kernel/debug/tracing/*`` (so ``enabled_functions``), and runs
    ``uname -a``, ``lsmod``, ``sysctl -a`` (``sos_commands/kernel/``);
  * process plugin: ``/proc/PID/stack`` and ``/proc/PID/status`` of at most
    2048 processes (the main thread only: no ``/proc/PID/task/TID``);
  * kpatch plugin: ``kpatch list`` and ``kpatch info`` (``sos_commands/kpatch/``).
  It has no ``patch_state``, no ``/sys/module/*/holders``, no
  ``kprobes/list``, no ``fail_function/injectable`` and no ``.ko`` files.

supportconfig (supportutils, bin/supportconfig): text files of
``#==[ Command ]==#`` and ``#==[ Configuration File ]==#`` sections:
  * ``basic-environment.txt``: ``uname -a``;
  * ``proc.txt``: ``/proc/sys/kernel/*`` (ftrace_enabled, tainted);
  * ``sysfs.txt``: ``find /sys | xargs ls -ld``: the names under
    ``/sys/kernel/livepatch`` (patches, objects, ``func,sympos``,
    attribute files) but none of their values;
  * ``modules.txt``: ``lsmod | sort`` (load order lost) and ``modinfo`` of
    each module (``livepatch: Y``);
  * ``livepatch.txt``: ``klp status`` (ready / in_progress), ``klp -v
    patches`` and, during a transition, ``klp -v blocking``.
  It has no kallsyms, no task stacks or patch states, no debugfs lists and
  no ``.ko`` files.
"""

from __future__ import annotations

import re

from .kallsyms import KallsymsError, SymbolTable
from .procfs import parse_stack
from .snapshot import (
    LoadedModule,
    PatchOrder,
    Snapshot,
    SnapshotError,
    Task,
    Tree,
    Unknown,
    _Reader,
    livepatches_from,
    modules_from,
    settle_livepatches,
)
from .tracefs import FtraceRecord, parse_enabled_functions

__all__ = ["read_foreign", "scc_wanted", "sos_wanted"]

_SOS = re.compile(
    r"sys/kernel/livepatch(/.*)?|proc/modules|proc/kallsyms"
    r"|proc/sys/kernel/(tainted|osrelease|ftrace_enabled)|sys/module/[^/]+/refcnt"
    r"|sys/kernel/(debug/)?tracing/enabled_functions|proc/\d+/(stack|status)"
    r"|sos_commands/kernel/(uname_-a|sysctl_-a|lsmod)|sos_commands/kpatch/[^/]+"
    r"|sos_reports/manifest\.json|version\.txt"
)
_SOS_DIRS = re.compile(
    r"sys|sys/kernel|sys/kernel/livepatch(/.*)?|sys/kernel/debug|sys/kernel/(debug/)?tracing"
    r"|sys/module|sys/module/[^/]+|proc|proc/\d+|proc/sys|proc/sys/kernel"
    r"|sos_commands|sos_commands/kernel|sos_commands/kpatch|sos_reports"
)
_SCC = re.compile(
    r"(basic-environment|proc|sysfs|modules|livepatch|env|supportconfig|basic-health-check)\.txt"
)


def sos_wanted(rel: str, prefix: bool = False) -> bool:
    """The sosreport paths worth reading (``prefix``: a directory to descend)."""
    return bool((_SOS_DIRS if prefix else _SOS).fullmatch(rel))


def scc_wanted(rel: str, prefix: bool = False) -> bool:
    """The supportconfig files worth reading (all at its top)."""
    return not prefix and bool(_SCC.fullmatch(rel))


def read_foreign(tree: Tree) -> Snapshot | None:
    if tree.isdir("sos_commands") or tree.has("sos_reports/manifest.json"):
        return _read_sos(tree)
    if tree.has("basic-environment.txt") or tree.has("supportconfig.txt"):
        return _read_scc(tree)
    return None


# --------------------------------------------------------------- sosreport


def _read_sos(tree: Tree) -> Snapshot:
    r = _Reader(tree, None)
    release: str | Unknown = Unknown("sos_commands/kernel/uname_-a: not in the sosreport")
    uname = tree.text("sos_commands/kernel/uname_-a")
    if uname and len(uname.split()) > 2:
        release = uname.split()[2]
    elif tree.text("proc/sys/kernel/osrelease"):
        release = (tree.text("proc/sys/kernel/osrelease") or "").strip()
    ftrace_enabled: bool | Unknown
    if tree.has("proc/sys/kernel/ftrace_enabled"):
        ftrace_enabled = r.bool_value("proc/sys/kernel/ftrace_enabled")
    else:
        ftrace_enabled = _sysctl(
            tree.text("sos_commands/kernel/sysctl_-a"), "kernel.ftrace_enabled"
        )
    tainted = r.int_value("proc/sys/kernel/tainted")
    for what, v in (("release", release), ("ftrace_enabled", ftrace_enabled), ("tainted", tainted)):
        r.note_unknown(what, v)

    have_sysfs = tree.isdir("sys/kernel/livepatch")
    patches = livepatches_from(tree, r) if have_sysfs else []
    modules = modules_from(r, patches)
    if not isinstance(modules, Unknown):
        modules = tuple(
            m._replace(holders=Unknown("sosreport does not collect /sys/module/*/holders"))
            for m in modules
        )
    r.note_unknown("modules", modules)
    kpatch = tree.text("sos_commands/kpatch/kpatch_list")
    if kpatch is not None:
        r.notes.append(
            "kpatch list: " + " | ".join(ln.strip() for ln in kpatch.splitlines() if ln.strip())
        )
    livepatches, order = settle_livepatches(r, have_sysfs, patches, modules)

    kallsyms: SymbolTable | Unknown
    data = tree.read("proc/kallsyms")
    if data is None:
        kallsyms = Unknown("/proc/kallsyms: not in the sosreport")
        r.missing.append(f"kallsyms: {kallsyms.reason}")
    else:
        try:
            kallsyms = SymbolTable(data, f"{tree.source}: proc/kallsyms")
        except KallsymsError as e:
            raise SnapshotError(str(e)) from None

    tasks = []
    for pid in tree.listdir("proc"):
        if not pid.isdigit():
            continue
        status = tree.text(f"proc/{pid}/status") or ""
        fields = dict(
            (k, v.strip()) for k, _, v in (ln.partition(":") for ln in status.splitlines()) if v
        )
        stack_text = tree.text(f"proc/{pid}/stack")
        if "Name" not in fields and stack_text is None:
            continue
        parsed = (
            r.parsed(f"proc/{pid}/stack", parse_stack, "stack") if stack_text is not None else None
        )
        stack = (
            tuple(parsed)
            if parsed is not None
            else Unknown(f"/proc/{pid}/stack: not in the sosreport")
        )
        kthread: bool | Unknown = Unknown(
            f"/proc/{pid}/status has no Kthread: line (older kernel) and sos keeps no stat"
        )
        if "Kthread" in fields:
            kthread = fields["Kthread"] == "1"
        state: str | Unknown = fields["State"][:1] if "State" in fields else Unknown("no status")
        tasks.append(
            Task(
                int(pid),
                int(pid),
                fields.get("Name", ""),
                kthread,
                state,
                Unknown("sosreport does not collect patch_state"),
                stack,
            )
        )
    partial = (
        "sosreport keeps /proc/PID/stack of each process's main thread only "
        "(at most 2048 processes): other threads are unknown"
    )
    r.missing.append(f"tasks: {partial}; patch_state of every task")
    ftrace = _sos_ftrace(r)
    r.missing.append("kprobes: sosreport does not collect /sys/kernel/debug/kprobes/list")
    r.missing.append("error injection list: sosreport does not collect it")
    r.missing.append(".ko files: sosreport does not collect them")
    return Snapshot(
        tree.source,
        "sosreport",
        None,
        release,
        ftrace_enabled,
        tainted,
        livepatches,
        order,
        modules,
        kallsyms,
        tuple(tasks),
        partial,
        Unknown("sosreport does not collect /sys/kernel/debug/kprobes/list"),
        ftrace,
        Unknown("sosreport does not collect fail_function/injectable"),
        (),
        tuple(r.missing),
        tuple(r.notes),
    )


def _sos_ftrace(r: _Reader) -> tuple[FtraceRecord, ...] | Unknown:
    for rel in (
        "sys/kernel/debug/tracing/enabled_functions",
        "sys/kernel/tracing/enabled_functions",
    ):
        items = r.parsed(rel, parse_enabled_functions, "enabled_functions")
        if items is not None:
            return tuple(items)
    value = Unknown("tracing/enabled_functions: not in the sosreport (debugfs not mounted?)")
    r.missing.append(f"ftrace users: {value.reason}")
    return value


def _sysctl(text: str | None, key: str) -> bool | Unknown:
    for line in (text or "").splitlines():
        k, eq, v = line.partition("=")
        if eq and k.strip() == key:
            return v.strip() != "0"
    return Unknown(f"{key}: not in sysctl -a")


# ------------------------------------------------------------ supportconfig

_LIVEPATCH_Y = re.compile(r"^livepatch:\s+Y\s*$", re.M)
_SECTION = re.compile(r"#==\[ (.+?) \]=+#")


def _sections(text: str | None) -> list[tuple[str, str, str]]:
    """``(kind, label, body)`` of each ``#==[ Kind ]==#`` / ``# label`` section."""
    out: list[tuple[str, str, str]] = []
    if not text:
        return out
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _SECTION.fullmatch(lines[i].strip())
        if m is None:
            i += 1
            continue
        label = (
            lines[i + 1][2:].strip() if i + 1 < len(lines) and lines[i + 1].startswith("#") else ""
        )
        j = i + 2
        while j < len(lines) and not _SECTION.fullmatch(lines[j].strip()):
            j += 1
        out.append((m[1], label, "\n".join(lines[i + 2 : j]).strip("\n")))
        i = j
    return out


def _command(sections: list[tuple[str, str, str]], suffix: str) -> str | None:
    """Output of the command whose label ends with ``suffix`` (the binary path varies)."""
    for kind, label, body in sections:
        if kind == "Command" and (label == suffix or label.endswith("/" + suffix)):
            return body
    return None


def _conf(sections: list[tuple[str, str, str]], path: str) -> str | None:
    for kind, label, body in sections:
        if kind == "Configuration File" and label == path:
            return body
    return None


def _read_scc(tree: Tree) -> Snapshot:
    env = _sections(tree.text("basic-environment.txt"))
    proc = _sections(tree.text("proc.txt"))
    sysfs = _sections(tree.text("sysfs.txt"))
    mods = _sections(tree.text("modules.txt"))
    lp = _sections(tree.text("livepatch.txt"))

    missing: list[str] = []
    notes: list[str] = []
    release: str | Unknown = Unknown("basic-environment.txt: no 'uname -a'")
    uname = _command(env, "uname -a")
    if uname and len(uname.split()) > 2:
        release = uname.split()[2]
    ftrace_enabled: bool | Unknown
    fe = _conf(proc, "/proc/sys/kernel/ftrace_enabled")
    if fe is not None and fe.strip().isdigit():
        ftrace_enabled = fe.strip() != "0"
    else:
        ftrace_enabled = _sysctl(
            _command(_sections(tree.text("env.txt")), "sysctl -a"), "kernel.ftrace_enabled"
        )
    tainted: int | Unknown = Unknown("proc.txt: no /proc/sys/kernel/tainted")
    t = _conf(proc, "/proc/sys/kernel/tainted")
    if t is not None and t.strip().isdigit():
        tainted = int(t.strip())

    # The sysfs listing: names of patches, objects, functions and attributes.
    files: dict[str, bytes | None] = {}
    dirs: set[str] = set()
    listing = next((body for kind, label, body in sysfs if "find /sys" in label), None)
    for line in (listing or "").splitlines():
        f = line.split()
        if len(f) < 2 or not f[-1].startswith("/sys/kernel/livepatch"):
            continue
        path = f[-1].lstrip("/")
        (dirs.add(path) if f[0].startswith("d") else files.__setitem__(path, None))
    lptree = Tree(tree.source, files, dirs)
    r = _Reader(lptree, None, no_content="supportconfig lists sysfs names, not their values")
    have_sysfs = lptree.isdir("sys/kernel/livepatch")
    patches = livepatches_from(lptree, r) if have_sysfs else []

    status = (_command(lp, "klp status") or "").strip()
    blocking = _command(lp, "klp -v blocking")
    if status == "ready" and patches:
        # No transition in progress, and a patch directory outside a
        # transition belongs to an enabled patch (a disabled one is freed).
        patches = [
            p._replace(enabled=True, transition=False) if "enabled" in p.attributes else p
            for p in patches
        ]
        notes.append("enabled=1 transition=0 for every patch: derived from 'klp status' = ready")
    elif status == "in_progress":
        n = len([ln for ln in (blocking or "").splitlines() if ln.strip()])
        notes.append(f"'klp status' = in_progress; 'klp -v blocking' lists {n} lines")

    modules = _scc_modules(mods, {p.name for p in patches})
    if isinstance(modules, Unknown):
        missing.append(f"modules: {modules.reason}")
    if have_sysfs:  # lsmod | sort lost the load order: keep sysfs name order
        livepatches = tuple(patches)
    else:
        livepatches, _ = settle_livepatches(r, have_sysfs, patches, modules)
    order = PatchOrder(
        "unknown" if livepatches else "none",
        "supportconfig sorts the module list and keeps no stack_order value"
        if livepatches
        else "no livepatches",
    )
    if livepatches:
        missing.append(f"patch order: {order.detail}")
        missing.append("livepatch attribute values (replace, patched, ...): not in supportconfig")
    missing += [
        "kallsyms: supportconfig does not collect /proc/kallsyms",
        "tasks: supportconfig collects no stacks or patch states"
        + (" ('klp -v blocking' names the blocking threads)" if blocking else ""),
        "kprobes, ftrace users, error injection list: supportconfig does not collect them",
        ".ko files: supportconfig does not collect them",
    ]
    for what, v in (("release", release), ("ftrace_enabled", ftrace_enabled), ("tainted", tainted)):
        if isinstance(v, Unknown):
            missing.append(f"{what}: {v.reason}")
    return Snapshot(
        tree.source,
        "supportconfig",
        None,
        release,
        ftrace_enabled,
        tainted,
        livepatches,
        order,
        modules,
        Unknown("supportconfig does not collect /proc/kallsyms"),
        Unknown("supportconfig collects no task stacks or patch states"),
        None,
        Unknown("supportconfig does not collect kprobes/list"),
        Unknown("supportconfig does not collect enabled_functions"),
        Unknown("supportconfig does not collect fail_function/injectable"),
        (),
        tuple(r.missing + missing),
        tuple(r.notes + notes),
    )


def _scc_modules(
    sections: list[tuple[str, str, str]], patch_names: set[str]
) -> tuple[LoadedModule, ...] | Unknown:
    """``lsmod | sort`` (or ``sort /proc/modules``) and each module's ``modinfo``."""
    livepatch = set(patch_names)
    for kind, label, body in sections:
        name = label.rsplit("/", 1)[-1].split()
        if kind == "Command" and name[:1] == ["modinfo"] and _LIVEPATCH_Y.search(body):
            livepatch.add(name[-1])
    lsmod = _command(sections, "lsmod | sort")
    out = []
    if lsmod is not None:
        for line in lsmod.splitlines():
            f = line.split()
            if len(f) < 3 or f[0] == "Module" or not f[1].isdigit() or not f[2].isdigit():
                continue
            used_by = tuple(u for u in (f[3].split(",") if len(f) > 3 else []) if u)
            out.append(
                LoadedModule(
                    f[0],
                    int(f[1]),
                    int(f[2]),
                    used_by,
                    Unknown("supportconfig does not collect /sys/module/*/holders"),
                    Unknown("lsmod does not show the module state"),
                    Unknown("lsmod does not show taints"),
                    f[0] in livepatch,
                )
            )
        return tuple(out)
    return Unknown("modules.txt: no 'lsmod | sort'")
