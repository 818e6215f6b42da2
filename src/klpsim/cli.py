"""The ``klpsim`` command line.

Exit status: 0 success; 1 a script failed (a helper died, a check_result
differed) or a comparison found differences; 2 bad input (a script, a
module definition, an option); 3 ``--check`` found a broken invariant;
70 (EX_SOFTWARE) an internal error of klpsim itself; 74 (EX_IOERR) the
output could not be written.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

from klpsim.real.vm import KERNELS as REAL_KERNELS

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings here
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn, TextIO

    from klpsim.session import Session

__all__ = ["main", "entry", "build_parser", "EX_SOFTWARE", "EX_IOERR"]

EX_SOFTWARE = 70
"""sysexits.h: an internal software error (a crash of klpsim itself)."""
EX_IOERR = 74
"""sysexits.h: an error writing the output (a full device, a closed stdout)."""


def _err(message: str) -> int:
    """One line on stderr; exit status 2 (bad input)."""
    from klpsim.kernel.printk import escape

    print(f"klpsim: {escape(message)}", file=sys.stderr)
    return 2


def _script_place(name: str) -> tuple[str, Path]:
    """(label for messages, directory whose test_modules/ holds its modules)
    of SCRIPT; ``-`` is standard input, with modules beside the current
    directory, as ``insmod test_modules/X.ko`` would find them."""
    if name == "-":
        return "<stdin>", Path.cwd()
    return name, Path(name).parent


def _read_script(name: str) -> str:
    from klpsim.scenario.parser import decode_script

    if name == "-":
        return decode_script(sys.stdin.buffer.read())
    try:
        data = Path(name).read_bytes()
    except OSError as e:
        raise _BadInput(f"{name}: {e.strerror}") from None
    return decode_script(data)


class _BadInput(Exception):
    pass


def _config(items: list[str]) -> dict[str, bool]:
    overrides = {}
    for item in items:
        option, _, value = item.partition("=")
        if not option.startswith("CONFIG_") or value not in ("y", "n"):
            raise _BadInput(f"--config {item}: expected CONFIG_NAME=y or =n")
        overrides[option.removeprefix("CONFIG_")] = value == "y"
    return overrides


def _symbols(path: str | None):  # -> SymbolTable | None
    """``--kallsyms FILE``: the table, or _BadInput naming the file."""
    if path is None:
        return None
    from klpsim.artifacts.kallsyms import KallsymsError, read_symbol_table

    try:
        return read_symbol_table(path)
    except KallsymsError as e:
        raise _BadInput(f"--kallsyms {e}") from None


def _cmd_run(args: argparse.Namespace) -> int:
    from klpsim.hostboot import HostBootError
    from klpsim.scenario.parser import ScriptError
    from klpsim.session import CheckFailed, Session, SessionError

    try:
        config = _config(args.config)
        label, script_dir = _script_place(args.script)
        symbols = _symbols(args.kallsyms)
        kwargs = dict(
            config=config,
            module_dirs=[Path(d) for d in args.modules],
            script_dir=script_dir,
            out=sys.stdout,
            err=sys.stderr,
            transcript=not args.dmesg,
            color=not args.dmesg and sys.stdout.isatty(),
            show_stdout=not args.dmesg,
            path=label,
            notes=not args.quiet_notes,
        )
        if args.snapshot is not None:
            if symbols is not None:
                raise _BadInput("run: --snapshot brings its own kallsyms; no --kallsyms with it")
            session = _snapshot_session(args.snapshot, args.kernel, kwargs)
        else:
            session = Session(args.kernel or "replace-set", symbols=symbols, **kwargs)  # type: ignore[arg-type]
        notes = session.record_notes() if args.html is not None else []
        status = session.run(_read_script(args.script), check=args.check)
    except (_BadInput, SessionError, ScriptError, HostBootError) as e:
        return _err(str(e))
    except CheckFailed as e:
        if args.dmesg:
            _print_lines(sys.stdout, session.dmesg())
        print(f"klpsim: check: {e}", file=sys.stderr)
        return 3
    if args.dmesg:
        _print_lines(sys.stdout, session.dmesg())
    try:
        _after_run(args, session, notes)
    except _BadInput as e:
        return _err(str(e))
    return 1 if status else 0


def _snapshot_session(path: str, kernel: str | None, kwargs: dict) -> Session:
    """A session booted into the host snapshot at *path* (hostboot.py); its
    unknowns go to stderr, one line each, before the script runs."""
    from klpsim.artifacts.snapshot import SnapshotError, read_snapshot
    from klpsim.livepatch.profiles import all_profiles
    from klpsim.session import Session

    if kernel is not None and kernel not in all_profiles():
        raise _BadInput(f"unknown kernel profile '{kernel}' (see 'klpsim kernels')")
    try:
        snap = read_snapshot(path)
    except SnapshotError as e:
        raise _BadInput(str(e)) from None
    session = Session.from_snapshot(snap, kernel, **kwargs)
    host = session.host
    assert host is not None
    print(f"klpsim: snapshot {path}: kernel {host.profile} ({host.profile_why})", file=sys.stderr)
    for u in host.unknowns:
        print(f"klpsim: snapshot: unknown: {u}", file=sys.stderr)
    return session


def _after_run(args: argparse.Namespace, session: Session, notes: list[tuple[int, str]]) -> None:
    """--timeline and --html: what the event log shows of the whole run."""
    if args.timeline:
        from klpsim.tools.timeline import render

        records = session.system.events.records
        sys.stdout.write(render(records, session.kernel.clock.now))
    if args.html is not None:
        from klpsim.tools.html import write_html

        try:
            write_html(session, args.html, notes)
        except OSError as e:
            raise _BadInput(f"--html {args.html}: {e.strerror}") from None
        where = Path(args.html).resolve().as_uri()
        print(f"klpsim: wrote {args.html}; open it in a web browser: {where}", file=sys.stderr)


def _cmd_status(args: argparse.Namespace) -> int:
    if args.snapshot is not None:
        if args.script is not None or args.at is not None:
            return _err("status: --snapshot takes no SCRIPT or --at")
        from klpsim.artifacts.snapshot import SnapshotError, read_snapshot
        from klpsim.tools.status import snapshot_report

        try:
            snap = read_snapshot(args.snapshot)
        except SnapshotError as e:
            return _err(str(e))
        sys.stdout.write(snapshot_report(snap))
        return 0
    if args.script is None:
        return _err("status: give a SCRIPT (with --at LINE) or --snapshot SNAP")
    if args.at is not None and args.at < 1:
        return _err(f"status: --at {args.at}: lines count from 1")
    import io

    from klpsim.scenario.parser import ScriptError
    from klpsim.session import Session, SessionError
    from klpsim.tools.status import system_report

    try:
        label, script_dir = _script_place(args.script)
        session = Session(
            args.kernel,
            config=_config(args.config),
            module_dirs=[Path(d) for d in args.modules],
            script_dir=script_dir,
            out=io.StringIO(),
            err=sys.stderr,
            show_stdout=False,
            path=label,
        )
        status = session.run(_read_script(args.script), until_line=args.at)
    except (_BadInput, SessionError, ScriptError) as e:
        return _err(str(e))
    if status:
        print(
            f"klpsim: status: {label} stopped at line {session.runner.line} "
            f"(exit status {status}); the views show the state it left",
            file=sys.stderr,
        )
    sys.stdout.write(system_report(session.system))
    return 0


def _print_lines(out: TextIO, lines: list[str]) -> None:
    out.write("".join(line + "\n" for line in lines))


def _cmd_kernels(args: argparse.Namespace) -> int:
    from klpsim.livepatch.profiles import DEFAULT_PROFILE, all_profiles

    for name, profile in all_profiles().items():
        mark = " (default)" if name == DEFAULT_PROFILE else ""
        print(f"{name:16} {profile.summary}{mark}")
    return 0


def _cmd_semantics(args: argparse.Namespace) -> int:
    from klpsim.model.schema import DefinitionError
    from klpsim.scenario.parser import ScriptError
    from klpsim.tools.semantics import SHIPPED, generate

    if args.scenarios is None:
        folder, label = SHIPPED, "semantics"
    else:
        folder, label = Path(args.scenarios), args.scenarios.rstrip("/")
        if not os.path.isdir(folder):  # False, not OSError, for a name too long
            return _err(f"{args.scenarios}: not a directory")
    try:
        table = generate(folder, label)
    except (ScriptError, DefinitionError) as e:
        return _err(str(e))
    except OSError as e:
        return _err(f"{e.filename}: {e.strerror}")
    sys.stdout.write(table)
    return 0


def _cmd_truth_table(args: argparse.Namespace) -> int:
    from klpsim.tools.truthtable import render

    sys.stdout.write(render())
    return 0


def _real_tier(fn: Callable[[], int]) -> int:
    """Run a command of the real-kernel tier; its errors are one line, exit 2."""
    from klpsim.real.vm.errors import VMError

    try:
        status: int = fn()
        return status
    except VMError as e:
        return _err(str(e))


def _log(msg: str) -> None:
    print(f"klpsim: {msg}", file=sys.stderr, flush=True)


def _cmd_diff(args: argparse.Namespace) -> int:
    from klpsim.scenario.parser import ScriptError
    from klpsim.tools.realdiff import diff_scripts

    scripts = [Path(s) for s in args.scripts]
    for p in scripts:
        if not os.path.isfile(p):
            return _err(f"{p}: No such file or directory")
    try:
        from klpsim.progress import progress

        with progress("diff", len(scripts)) as bar:
            return _real_tier(
                lambda: diff_scripts(
                    args.kernel,
                    scripts,
                    [Path(d) for d in args.modules],
                    sys.stdout,
                    bar.log,
                    output=args.output,
                    step=bar.advance,
                )
            )
    except ScriptError as e:
        return _err(str(e))


def _cmd_fuzz(args: argparse.Namespace) -> int:
    from klpsim.tools.fuzz import fuzz, generate, stats, write_scenario

    if not args.out:  # Path("") is ".": not what an empty name asked for
        return _err("--out '': No such file or directory")
    out = Path(args.out)
    if os.path.exists(out) and not os.path.isdir(out):
        return _err(f"--out {args.out}: not a directory")
    if args.count < 0:
        return _err(f"--count {args.count}: must not be negative")
    if args.stats:
        scenarios = generate(args.kernel, args.seed, args.count)
        print(
            f"{'STEP KIND':<18} SCENARIOS (of {len(scenarios)}, kernel {args.kernel}, seed {args.seed})"
        )
        for kind, share in stats(scenarios).items():
            print(f"{kind:<18} {share:6.1%}")
        return 0
    if args.dry_run:
        try:
            for sc in generate(args.kernel, args.seed, args.count):
                print(write_scenario(sc, out / args.kernel))
        except OSError as e:
            return _err(f"--out {args.out}: {e.strerror}")
        return 0
    from klpsim.progress import progress

    with progress("fuzz", args.count) as bar:
        return _real_tier(
            lambda: fuzz(
                args.kernel, args.seed, args.count, out, sys.stdout, bar.log, step=bar.advance
            )
        )


def _cmd_check(args: argparse.Namespace) -> int:
    from klpsim.tools.check import run_check

    return run_check(args)


def _add_check_parser(sub) -> None:  # the command imports tools.check when it runs
    p = sub.add_parser(
        "check",
        help="an offline verdict on a set of livepatches (.ko or .toml), by running the model",
        description="Load the livepatches in order on a simulated kernel and report what "
        "each load does: refusals with the rule, the function or state and the other patch; "
        "what each replace re-patches, reverts or keeps. Exit 0: every load accepted and no "
        "silent revert; 1: otherwise; 2: bad input.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="livepatch or plain modules")
    p.add_argument("--kernel", default="replace-set", metavar="PROFILE",
                   help="kernel profile (default: replace-set; see 'klpsim kernels')")  # fmt: skip
    p.add_argument(
        "--kallsyms", metavar="FILE", help="the target kernel's /proc/kallsyms or System.map"
    )
    p.add_argument("--order", choices=["as-given", "any"], default="as-given",
                   help="any: also search other load orders for the smallest that fails")  # fmt: skip
    p.add_argument("--suggest-sets", action="store_true",
                   help="propose a replace_set per patch so no two sets share a function or state")  # fmt: skip
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--replace", action="append", default=[], metavar="MOD=0|1",
                   help="replace for a patch whose file does not hold it")  # fmt: skip
    p.add_argument("--replace-set", action="append", default=[], metavar="MOD=N",
                   help="replace_set for a patch whose file does not hold it")  # fmt: skip
    p.set_defaults(func=_cmd_check)


def _cmd_explore(args: argparse.Namespace) -> int:
    from klpsim.tools.explore import (
        Backend,
        Bounds,
        BoundsError,
        LocalBackend,
        Result,
        check_bounds,
        default_module_funcs,
        explore,
        progress_line,
        report,
        time_limit,
        write_counterexample,
    )

    b = Bounds(
        args.kernel,
        args.patches,
        args.funcs,
        args.sets,
        args.states,
        args.tasks,
        args.depth,
        default_module_funcs(args.funcs) if args.module_funcs is None else args.module_funcs,
        symmetry=not args.no_symmetry,
        ops=tuple(o for o in args.ops.split(",") if o) if args.ops else (),
        every=args.family == "every",
    )
    try:
        check_bounds(b, args.yes)
        if args.time_limit is not None and args.time_limit <= 0:
            raise BoundsError(f"--time-limit {args.time_limit:g}: must be more than 0")
        if args.jobs < 1:
            raise BoundsError(f"--jobs {args.jobs}: must be at least 1")
        if args.jobs > 4 * (os.cpu_count() or 1) and not args.yes:
            raise BoundsError(f"--jobs {args.jobs}: more than 4 per CPU; --yes")
    except BoundsError as e:
        return _err(str(e))
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return _err(f"--out {args.out}: not a directory")
    result = Result(b)
    backend: Backend
    if args.ray is not None:
        from klpsim.tools.explore_backends import RayBackend, RayUnavailable

        try:
            backend = RayBackend(b, args.jobs, args.ray)
        except RayUnavailable as e:
            return _err(str(e))
        result.backend = f"ray {args.ray}"
    elif args.jobs > 1:
        from klpsim.tools.explore_backends import ProcessBackend

        backend = ProcessBackend(b, args.jobs)
        result.backend = "processes"
    else:
        backend = LocalBackend(b)

    def progress(depth: int, r: Result) -> None:
        if not args.quiet:
            _log(f"explore: {progress_line(depth, r)}")

    try:
        with time_limit(args.time_limit):
            explore(b, backend, progress, result, first=args.first)
    except KeyboardInterrupt:
        sys.stdout.write(report(result))
        return 130
    written = {}
    for found in result.found.values():
        directory = out / b.profile / found.invariant
        written[found.invariant] = write_counterexample(b, found, directory)
    sys.stdout.write(report(result, written))
    return 3 if result.found else 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from klpsim.progress import progress
    from klpsim.tools.plan import run_plan

    return run_plan(args, progress=progress)


def _add_plan_parser(sub) -> None:  # the command imports tools.plan when it runs
    p = sub.add_parser(
        "plan",
        help="what loading new livepatches will do on the host a snapshot was taken on",
        description="Boot the model into a host snapshot (klpsim snapshot, sos, scc) and load "
        "the new modules in order: refusals with the rule; what each function runs after; the "
        "transition (who blocks it, whether it completes); kprobes and BPF programs on affected "
        "functions; the log and sysfs after. Exit 0: every load accepted and completing, no "
        "silent revert; 1: otherwise; 2: bad input. With --fleet DIR, every snapshot in DIR, "
        "grouped by outcome and reason (exit 0 when every host accepts). See docs/plan.md.",
    )
    p.add_argument("snapshot", metavar="SNAP",
                   help="the host snapshot (.tar.gz or directory); with --fleet, the first NEW")  # fmt: skip
    p.add_argument("files", nargs="*", metavar="NEW", help="the new modules (.ko or .toml)")
    p.add_argument("--fleet", metavar="DIR",
                   help="plan every snapshot in DIR; report the hosts grouped by outcome and reason")  # fmt: skip
    p.add_argument("--jobs", type=int, default=None, metavar="J",
                   help="with --fleet: worker processes (default 1)")  # fmt: skip
    p.add_argument("--ray", metavar="ADDRESS",
                   help="with --fleet: plan on a Ray cluster ('local' starts one; pip install 'klpsim[ray]')")  # fmt: skip
    p.add_argument("--kernel", metavar="PROFILE",
                   help="kernel profile (default: chosen from the snapshot; see docs/plan.md)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=_cmd_plan)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line and exit status 2, not argparse's usage block; a control
        character of an argument (a CR) is escaped, as in every error."""
        from klpsim.kernel.printk import escape

        self.exit(2, f"{self.prog}: error: {escape(message)}\n")


def _version() -> str:
    from klpsim import __version__

    return f"klpsim {__version__}"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="klpsim", description="An executable model of Linux kernel livepatching.")
    p.add_argument("--version", action="version", version=_version())
    p.add_argument(
        "--debug", action="store_true", help="on an internal error, print the traceback too"
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run a scenario script on a simulated kernel")
    run.add_argument(
        "--kernel",
        metavar="PROFILE",
        help="kernel profile (default: replace-set, or the snapshot's; see 'klpsim kernels')",
    )
    run.add_argument(
        "--snapshot",
        metavar="SNAP",
        help="start from a host snapshot's state (klpsim snapshot, sos, scc): its patches, "
        "tasks, kprobes and kallsyms",
    )
    run.add_argument(
        "--modules",
        action="append",
        default=[],
        metavar="DIR",
        help="directory of modules (MOD.toml definitions, MOD.ko files); may be repeated",
    )
    run.add_argument(
        "--kallsyms",
        metavar="FILE",
        help="a /proc/kallsyms copy or a System.map (.gz too): the kernel's real symbol names",
    )
    run.add_argument(
        "--dmesg", action="store_true", help="print only the kernel log, as 'dmesg --notime' would"
    )
    run.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="CONFIG_X=y|n",
        help="set or unset a kernel config option of the simulated kernel",
    )
    run.add_argument(
        "--check",
        action="store_true",
        help="check the livepatch invariants after every command; exit 3 at the first violation",
    )
    run.add_argument(
        "--timeline",
        action="store_true",
        help="end with a timeline: each patch's life and each transition, on the simulated clock",
    )
    run.add_argument(
        "--html",
        metavar="OUT.html",
        help="write a self-contained page: func_stacks, task states and the log over time",
    )
    run.add_argument(
        "--quiet-notes",
        action="store_true",
        help="leave out the 'klpsim: note:' lines that say what the log does not",
    )
    run.add_argument("script", metavar="SCRIPT", help="the scenario script, or - for stdin")
    run.set_defaults(func=_cmd_run)
    st = sub.add_parser(
        "status",
        help="klp_status, func_stack and klp_blocking of a script at a line, or of a host snapshot",
    )
    st.add_argument("script", nargs="?", metavar="SCRIPT", help="the scenario script, or -")
    st.add_argument("--at", type=int, metavar="LINE", help="run SCRIPT up to LINE (default: all)")
    st.add_argument(
        "--snapshot", metavar="SNAP", help="a host snapshot (klpsim snapshot, sos, scc)"
    )
    st.add_argument("--kernel", default="replace-set", metavar="PROFILE")
    st.add_argument("--modules", action="append", default=[], metavar="DIR")
    st.add_argument("--config", action="append", default=[], metavar="CONFIG_X=y|n")
    st.set_defaults(func=_cmd_status)
    sem = sub.add_parser("semantics", help="run the semantics scenarios on every profile: a table")
    sem.add_argument(
        "--scenarios", metavar="DIR", help="a folder of scenarios (default: klpsim's own)"
    )
    sem.set_defaults(func=_cmd_semantics)
    sub.add_parser("vm", help="run scenarios and selftests on real kernels in QEMU", add_help=False)
    diff = sub.add_parser("diff", help="run scripts on the model and on a real kernel; compare")
    diff.add_argument("--kernel", required=True, choices=REAL_KERNELS)
    diff.add_argument("--modules", action="append", default=[], metavar="DIR")
    diff.add_argument(
        "--output",
        action="store_true",
        help="compare the scripts' output too (normalized; a fresh guest per script)",
    )
    diff.add_argument("scripts", nargs="+", metavar="SCRIPT")
    diff.set_defaults(func=_cmd_diff)
    fz = sub.add_parser("fuzz", help="random scenarios on the model and a real kernel")
    fz.add_argument("--kernel", required=True, choices=REAL_KERNELS)
    fz.add_argument("--seed", type=int, required=True)
    fz.add_argument("--count", type=int, default=30)
    fz.add_argument(
        "--out",
        default="fuzz-failures",
        metavar="DIR",
        help="where mismatching scenarios are written (default: fuzz-failures)",
    )
    fz.add_argument(
        "--dry-run", action="store_true", help="only generate the scenarios into --out, run nothing"
    )
    fz.add_argument(
        "--stats",
        action="store_true",
        help="only generate the scenarios and print the share that has each step kind",
    )
    fz.set_defaults(func=_cmd_fuzz)
    ex = sub.add_parser(
        "explore",
        help="search every sequence of operations up to a depth for broken invariants",
        description="Breadth-first search over the model's canonical states: every "
        "sequence of at most DEPTH operations (loads of the family's patches, "
        "disables, unloads, force, tasks sleeping in and leaving functions, retry "
        "ticks, a target module coming and going), with every invariant checked. "
        "Exit status 3 if one broke (a counterexample script is written per invariant).",
    )
    ex.add_argument("--kernel", default="replace-set", metavar="PROFILE")
    for flag, dest, default, what in (
        ("--patches", "patches", 3, "the family's patches, lp1..lpN (every: loaded at most)"),
        ("--funcs", "funcs", 3, "functions the patches may patch"),
        ("--sets", "sets", 2, "replace sets 0..S-1 (tags 1..S on replace-tag)"),
        ("--states", "states", 1, "state ids 1..T, each at version 1 or 2 (0: none)"),
        ("--tasks", "tasks", 2, "worker tasks that may sleep in a function"),
        ("--depth", "depth", 4, "operations from boot"),
    ):
        ex.add_argument(flag, dest=dest, type=int, default=default, metavar=dest[0].upper(),
                        help=f"{what} (default: {default})")  # fmt: skip
    ex.add_argument(
        "--module-funcs",
        type=int,
        default=None,
        metavar="J",
        help="how many of the functions are a target module's (default: 1, 0 for one function)",
    )
    ex.add_argument(
        "--family",
        choices=("chain", "every"),
        default="chain",
        help="chain: N patches, each overlapping its neighbours (docs/explore.md); every: "
        "each load may be any patch the bounds allow, N loaded at most (default: %(default)s)",
    )
    ex.add_argument("--jobs", type=int, default=1, metavar="J", help="worker processes")
    ex.add_argument(
        "--ray",
        metavar="ADDRESS|local",
        help="run the workers on a Ray cluster (local: start one here); pip install klpsim[ray]",
    )
    ex.add_argument(
        "--out",
        default="explore-counterexamples",
        metavar="DIR",
        help="where counterexamples go: DIR/PROFILE/INVARIANT/ (default: %(default)s)",
    )
    ex.add_argument(
        "--ops",
        metavar="KIND,...",
        help="only these kinds of operation: load, disable, force, attr, unload, task, tick,"
        " module (default: all)",
    )
    ex.add_argument(
        "--first",
        action="store_true",
        help="stop after the depth at which the first invariant broke",
    )
    ex.add_argument(
        "--time-limit",
        type=float,
        metavar="SECONDS",
        help="stop after SECONDS; the depths finished by then are reported",
    )
    ex.add_argument("--yes", action="store_true", help="accept bounds that may run for days")
    ex.add_argument("--no-symmetry", action="store_true", help="no symmetry reduction")
    ex.add_argument("--quiet", action="store_true", help="no progress lines")
    ex.set_defaults(func=_cmd_explore)
    tt = sub.add_parser(
        "truth-table",
        help="livepatch x ftrace users, both attach orders: docs/truth-table.md",
        description="Print docs/truth-table.md: the model's truth table beside the measured one.",
    )
    tt.set_defaults(func=_cmd_truth_table)
    from klpsim.tools.inspect import add_inspect_parser

    add_inspect_parser(sub)
    _add_check_parser(sub)
    _add_plan_parser(sub)
    sub.add_parser("snapshot", add_help=False, help="collect or show a host snapshot")
    kernels = sub.add_parser("kernels", help="list the kernel profiles")
    kernels.set_defaults(func=_cmd_kernels)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rest = argv[1:] if argv[:1] == ["--debug"] else argv
    if rest[:1] == ["snapshot"]:  # collects with the stdlib only: no model imports
        from klpsim.tools.snapshot import main as snapshot_main

        return snapshot_main(rest[1:])
    if rest[:1] == ["vm"]:  # the real-kernel tier parses its own options
        from klpsim.progress import progress
        from klpsim.real.vm.cli import main as vm_main

        return vm_main(rest[1:], progress=progress)
    args = build_parser().parse_args(argv)
    status: int = args.func(args)
    return status


class _ClosedStream:
    """Stands in for a standard stream whose descriptor is closed: the
    first write fails as it would on the descriptor (EBADF)."""

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _quiet_stdout() -> None:
    """Send whatever is still buffered for stdout nowhere, so that Python's
    own flush at exit does not fail again."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.__stdout__.fileno() if sys.__stdout__ else 1)
    except OSError:
        pass


def entry() -> None:
    """The console script: :func:`main`, with klpsim's own failures turned
    into one line and an exit status of their own (never a traceback, unless
    ``--debug``)."""
    debug = sys.argv[1:2] == ["--debug"]
    if sys.stdout is None:
        sys.stdout = _ClosedStream()  # type: ignore[assignment]
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (for the rest of the process)
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # e.g. "klpsim run ... | head": stop writing, as coreutils do.
        _quiet_stdout()
        status = 141
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EBADF, errno.EIO, errno.EDQUOT, errno.EFBIG):
            status = _internal_error(e, debug)
        else:
            _quiet_stdout()
            print(f"klpsim: write error: {e.strerror}", file=sys.stderr)
            status = EX_IOERR
    except KeyboardInterrupt:
        print("klpsim: interrupted", file=sys.stderr)
        status = 130
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 (a crash of klpsim itself)
        status = _internal_error(e, debug)
    sys.exit(status)


def _internal_error(e: BaseException, debug: bool) -> int:
    from klpsim.kernel.printk import escape

    if debug:
        import traceback

        traceback.print_exc()
    detail = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    hint = "" if debug else " (run with --debug for the traceback)"
    print(f"klpsim: internal error: {escape(detail)}{hint}", file=sys.stderr)
    return EX_SOFTWARE


if __name__ == "__main__":
    entry()
