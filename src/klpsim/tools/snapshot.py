"""``klpsim snapshot``: collect a host snapshot, print the sh collector, show a snapshot.

    klpsim snapshot [-o FILE.tar.gz|-] [--ko DIR] [--force]   collect this host
    klpsim snapshot --print-script                          the POSIX sh collector
    klpsim snapshot --show SNAP                             what SNAP holds and lacks

Collecting imports only the stdlib collector (real/collector.py); nothing
here touches the model.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources

__all__ = ["main", "python_collector_text", "script_text", "show_text"]

_PROG = "klpsim snapshot"


def _version() -> str:
    from klpsim.real.collector import klpsim_version

    return klpsim_version()


def script_text() -> str:
    """The sh collector (package data), stamped with this klpsim's version."""
    text = resources.files("klpsim.real").joinpath("data", "snapshot.sh").read_text()
    return text.replace("@KLPSIM_VERSION@", _version())


def python_collector_text() -> str:
    """real/collector.py as a stand-alone file, stamped with this klpsim's version."""
    text = resources.files("klpsim.real").joinpath("collector.py").read_text()
    return text.replace('_FALLBACK_VERSION = "unknown"', f'_FALLBACK_VERSION = "{_version()}"', 1)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        from klpsim.kernel.printk import escape

        self.exit(2, f"{self.prog}: error: {escape(message)}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=_PROG,
        description="Collect this host's livepatch state, read-only, into one archive "
        "(docs/snapshot.md); or show what a snapshot holds.",
    )
    p.add_argument(
        "-o",
        dest="out",
        metavar="FILE",
        help="the archive to write, '-' for stdout "
        "(default: klpsim-snapshot-<host>-<UTC date>.tar.gz here)",
    )
    p.add_argument("--ko", metavar="DIR", help="look for the livepatch .ko files in DIR")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p.add_argument(
        "--print-script",
        action="store_true",
        help="print the equivalent POSIX sh collector (for hosts without Python)",
    )
    p.add_argument("--show", metavar="SNAP", help="print what SNAP holds and what it lacks")
    # Tests point the collector at a fake tree (docs/snapshot.md, "Testing").
    p.add_argument("--root", default="", help=argparse.SUPPRESS)
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    # "is not None": an empty --show '' is still --show, never a collection.
    collecting = args.out is not None or args.ko is not None or args.force or args.root
    showing = args.show is not None
    if args.print_script and (showing or collecting):
        print(f"{_PROG}: --print-script takes no other option", file=sys.stderr)
        return 2
    if showing and collecting:
        print(f"{_PROG}: --show takes no other option", file=sys.stderr)
        return 2
    if args.print_script:
        sys.stdout.write(script_text())
        return 0
    if showing:
        from klpsim.artifacts.snapshot import SnapshotError, read_snapshot
        from klpsim.kernel.printk import escape

        try:
            snap = read_snapshot(args.show)
        except SnapshotError as e:
            print(f"{_PROG}: {escape(str(e))}", file=sys.stderr)
            return 2
        sys.stdout.write(show_text(snap))
        return 0
    from klpsim.real.collector import run_cli

    return run_cli(args.out, args.ko, args.force, args.root, _PROG)


# ------------------------------------------------------------------- --show


def _v(value) -> str:
    from klpsim.artifacts.snapshot import Unknown

    if isinstance(value, Unknown):
        return "?"
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def show_text(snap) -> str:
    """A human summary of a :class:`~klpsim.artifacts.snapshot.Snapshot`."""
    from klpsim.artifacts.snapshot import Unknown

    out: list[str] = []
    m = snap.manifest
    if m is not None:
        who = "root" if m.root else f"uid {m.uid}, not root"
        out.append(
            f"snapshot:  {snap.source} (klpsim format {m.format}, {m.collector} collector, "
            f"klpsim {m.klpsim}, {m.date}, {who})"
        )
        if m.testing_root:
            out.append(f"           collected from the test tree {m.testing_root}")
    else:
        out.append(f"snapshot:  {snap.source} ({snap.kind})")
    out.append(
        f"kernel:    {_v(snap.release)}  ftrace_enabled={_v(snap.ftrace_enabled)}  "
        f"tainted={_v(snap.tainted)}"
    )
    if isinstance(snap.livepatches, Unknown):
        out.append(f"livepatches: unknown ({snap.livepatches.reason})")
    else:
        out.append(f"livepatches: {len(snap.livepatches)} (order: {snap.patch_order.source})")
        for i, p in enumerate(snap.livepatches, 1):
            vals = [f"enabled={_v(p.enabled)}", f"transition={_v(p.transition)}"]
            for attr in ("replace", "replace_set", "stack_order"):
                if attr in p.attributes:
                    vals.append(f"{attr}={_v(getattr(p, attr))}")
            out.append(f"  {i}. {p.name}  {' '.join(vals)}")
            for o in p.objects:
                funcs = " ".join(f"{f.name},{f.sympos}" for f in o.funcs) or "-"
                out.append(f"       {o.name} (patched={_v(o.patched)}): {funcs}")
    if isinstance(snap.modules, Unknown):
        out.append(f"modules:   unknown ({snap.modules.reason})")
    else:
        lp = [mod for mod in snap.modules if mod.livepatch]
        out.append(f"modules:   {len(snap.modules)} loaded, {len(lp)} livepatch modules")
        for mod in lp:
            holders = "?" if isinstance(mod.holders, Unknown) else ",".join(mod.holders) or "-"
            out.append(
                f"  {mod.name}  refcnt={_v(mod.refcnt)} holders={holders} state={_v(mod.state)}"
            )
    if isinstance(snap.kallsyms, Unknown):
        out.append(f"kallsyms:  unknown ({snap.kallsyms.reason})")
    else:
        addr = "real" if snap.kallsyms.addresses_known else "all zero"
        out.append(f"kallsyms:  {len(snap.kallsyms)} symbols (addresses: {addr})")
    if isinstance(snap.tasks, Unknown):
        out.append(f"tasks:     unknown ({snap.tasks.reason})")
    else:
        tasks = snap.tasks
        kth = sum(t.kthread is True for t in tasks)
        states: dict[str, int] = {}
        for t in tasks:
            key = _v(t.patch_state)
            states[key] = states.get(key, 0) + 1
        stacks = sum(not isinstance(t.stack, Unknown) for t in tasks)
        ps = ", ".join(f"{k}: {n}" for k, n in sorted(states.items()))
        out.append(
            f"tasks:     {len(tasks)} threads, {kth} kthreads; patch_state {ps}; "
            f"stacks known for {stacks}"
        )
    for label, value in (("kprobes", snap.kprobes), ("ftrace", snap.ftrace)):
        if isinstance(value, Unknown):
            out.append(f"{label + ':':10} unknown ({value.reason})")
        else:
            out.append(f"{label + ':':10} {len(value)}")
            for e in value:
                out.append(f"  {e.text.splitlines()[0]}")
    if isinstance(snap.injectable, Unknown):
        out.append(f"injectable: unknown ({snap.injectable.reason})")
    else:
        out.append(f"injectable: {len(snap.injectable)} functions")
    for k in snap.ko_files:
        out.append(f".ko:       {k.module}: /{k.path} ({len(k.data)} bytes)")
    if snap.missing:
        out.append("missing:")
        out += [f"  - {line}" for line in snap.missing]
    if snap.notes:
        out.append("notes:")
        out += [f"  - {line}" for line in snap.notes]
    return "\n".join(out) + "\n"
