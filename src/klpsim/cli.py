"""The ``klpsim`` command line."""

import argparse
import os
import sys
from pathlib import Path

from klpsim.real.vm import KERNELS as REAL_KERNELS

__all__ = ["main"]


def _cmd_run(args) -> int:
    from klpsim.livepatch.profiles import all_profiles
    from klpsim.livepatch.system import boot
    from klpsim.scenario.parser import ScriptError, parse_script
    from klpsim.scenario.runner import ModuleResolver, Runner

    profiles = all_profiles()
    if args.kernel not in profiles:
        print(
            f"klpsim: unknown kernel profile '{args.kernel}' (see 'klpsim kernels')",
            file=sys.stderr,
        )
        return 2
    for d in args.modules:
        if not Path(d).is_dir():
            print(f"klpsim: --modules {d}: not a directory", file=sys.stderr)
            return 2
    overrides = {}
    for item in args.config:
        option, eq, value = item.partition("=")
        if not option.startswith("CONFIG_") or value not in ("y", "n"):
            print(f"klpsim: --config {item}: expected CONFIG_NAME=y or =n", file=sys.stderr)
            return 2
        overrides[option[len("CONFIG_") :]] = value == "y"
    path = Path(args.script)
    try:
        text = path.read_text()
    except OSError as e:
        print(f"klpsim: {path}: {e.strerror}", file=sys.stderr)
        return 2
    except UnicodeDecodeError:
        print(f"klpsim: {path}: not a text file", file=sys.stderr)
        return 2
    try:
        commands = parse_script(text, str(path))
        system = boot(args.kernel, config_overrides=overrides)
        resolver = ModuleResolver(system.profile, [Path(d) for d in args.modules], path.parent)
        runner = Runner(
            system, resolver, str(path), transcript=not args.dmesg, color=sys.stdout.isatty()
        )
        if args.check:
            _install_checker(runner, system, str(path))
        status = runner.run(commands)
    except ScriptError as e:
        print(f"klpsim: {e}", file=sys.stderr)
        return 2
    except _CheckFailed as e:
        if args.dmesg:
            sys.stdout.write("".join(line + "\n" for line in system.kernel.log.dmesg(notime=True)))
        print(f"klpsim: check: {e}", file=sys.stderr)
        return 3
    if args.dmesg:
        sys.stdout.write("".join(line + "\n" for line in system.kernel.log.dmesg(notime=True)))
    return 1 if status else 0


class _CheckFailed(Exception):
    pass


def _install_checker(runner, system, path: str) -> None:
    """--check: test the invariants after every command; stop at the first violation."""
    from klpsim.tools.check import Checker

    checker = Checker(system.klp)

    def after(cmd) -> None:
        violations = checker.after()
        if violations:
            v = violations[0]
            funcs = f" [functions: {', '.join(v.functions)}]" if v.functions else ""
            raise _CheckFailed(f"{path}:{cmd.line}: '{cmd.text}': {v.invariant}: {v.detail}{funcs}")

    runner.before_command = lambda cmd: checker.before()
    runner.after_command = after


def _cmd_kernels(args) -> int:
    from klpsim.livepatch.profiles import DEFAULT_PROFILE, all_profiles

    for name, profile in all_profiles().items():
        mark = " (default)" if name == DEFAULT_PROFILE else ""
        print(f"{name:16} {profile.summary}{mark}")
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """One line and exit status 2, not argparse's usage block."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _cmd_semantics(args) -> int:
    from klpsim.tools.semantics import DEFAULT_DIR, generate

    directory = Path(args.scenarios) if args.scenarios else DEFAULT_DIR
    if not directory.is_dir():
        print(f"klpsim: {directory}: not a directory", file=sys.stderr)
        return 2
    sys.stdout.write(generate(directory))
    return 0


def _real_tier(fn):
    """Run a command of the real-kernel tier; its errors are one line, exit 2."""
    from klpsim.real.vm.errors import VMError

    try:
        return fn()
    except VMError as e:
        print(f"klpsim: {e}", file=sys.stderr)
        return 2


def _log(msg: str) -> None:
    print(f"klpsim: {msg}", file=sys.stderr, flush=True)


def _cmd_diff(args) -> int:
    from klpsim.tools.realdiff import diff_scripts

    scripts = [Path(s) for s in args.scripts]
    for p in scripts:
        if not p.is_file():
            print(f"klpsim: {p}: No such file or directory", file=sys.stderr)
            return 2
    return _real_tier(
        lambda: diff_scripts(
            args.kernel, scripts, [Path(d) for d in args.modules], sys.stdout, _log
        )
    )


def _cmd_fuzz(args) -> int:
    from klpsim.tools.fuzz import fuzz, generate, write_scenario

    if args.dry_run:
        for sc in generate(args.kernel, args.seed, args.count):
            path = write_scenario(sc, Path(args.out) / args.kernel)
            print(path)
        return 0
    return _real_tier(
        lambda: fuzz(args.kernel, args.seed, args.count, Path(args.out), sys.stdout, _log)
    )


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="klpsim", description="An executable model of Linux kernel livepatching.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run a scenario script on a simulated kernel")
    run.add_argument(
        "--kernel",
        default="replace-set",
        metavar="PROFILE",
        help="kernel profile (default: replace-set; see 'klpsim kernels')",
    )
    run.add_argument(
        "--modules",
        action="append",
        default=[],
        metavar="DIR",
        help="directory of module definitions (MOD.toml); may be repeated",
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
    run.add_argument("script")
    run.set_defaults(func=_cmd_run)
    sem = sub.add_parser("semantics", help="run docs/semantics/ on every profile: a table")
    sem.add_argument("--scenarios", metavar="DIR", help="the scenario folder")
    sem.set_defaults(func=_cmd_semantics)
    sub.add_parser("vm", help="run scenarios and selftests on real kernels in QEMU", add_help=False)
    diff = sub.add_parser("diff", help="run scripts on the model and on a real kernel; compare")
    diff.add_argument("--kernel", required=True, choices=REAL_KERNELS)
    diff.add_argument("--modules", action="append", default=[], metavar="DIR")
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
    fz.set_defaults(func=_cmd_fuzz)
    sub.add_parser(
        "truth-table",
        add_help=False,
        help="livepatch x ftrace users, both attach orders: docs/truth-table.md",
    )
    kernels = sub.add_parser("kernels", help="list the kernel profiles")
    kernels.set_defaults(func=_cmd_kernels)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["truth-table"]:
        from klpsim.tools.truthtable import main as truth_main

        return truth_main(argv[1:])
    if argv[:1] == ["vm"]:  # the real-kernel tier parses its own options
        from klpsim.real.vm.cli import main as vm_main

        return vm_main(argv[1:])
    args = build_parser().parse_args(argv)
    return args.func(args)


def entry() -> None:
    """The console script: like main(), but quiet when stdout is closed early."""
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # e.g. "klpsim run ... | head": stop writing, as coreutils do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 141
    sys.exit(status)


if __name__ == "__main__":
    entry()
