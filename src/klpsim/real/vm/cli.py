"""``klpsim vm``: run scenario scripts (or the kernel's selftests) on a real kernel.

    klpsim vm [--kernel 6.1|6.12|replace-set] [--modules DIR]... [--filtered] SCRIPT...
    klpsim vm [--kernel 6.1|6.12|replace-set] --selftests [--save-logs DIR] [TEST...]
    klpsim vm [--kernel 6.1|6.12|replace-set] --prepare

The first run downloads Debian's kernel packages and builds the test modules
(cached under ``${XDG_CACHE_HOME:-~/.cache}/klpsim``); ``replace-set`` is
Debian's 6.12 source built with the replace_set rules (rskernel.py; about
ten minutes the first time), whose selftests are adapted as v2 4/4 adapts
them.  Every run then boots
one QEMU/TCG guest and runs all the scripts in it.  For each script, stdout
gets its kernel log (``dmesg --notime``, or with ``--filtered`` the lines
``check_result`` compares), after a ``==> SCRIPT <==`` line when there are
several; the script's own output goes to stderr.

Exit status: 0 when every script (or selftest) exited 0, 1 when one did
not, 2 for a missing tool or package, a bad module definition or a bad option.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import NoReturn

from . import KERNELS

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        raise SystemExit(_fail(message))


def _fail(message: str) -> int:
    from klpsim.kernel.printk import escape

    print(f"klpsim vm: {escape(message)}", file=sys.stderr)
    return 2


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="klpsim vm", description="Run scenario scripts on a real kernel.")
    p.add_argument("--kernel", default="6.12", choices=KERNELS, help="default: 6.12")
    p.add_argument(
        "--modules",
        action="append",
        default=[],
        metavar="DIR",
        help="directory of TOML module definitions (or .ko files)",
    )
    p.add_argument(
        "--selftests",
        action="store_true",
        help="run the kernel's own tools/testing/selftests/livepatch/test-*.sh",
    )
    p.add_argument(
        "--save-logs",
        metavar="DIR",
        help="with --selftests: write DIR/<kernel>/test-*.{dmesg,filtered,out}",
    )
    p.add_argument(
        "--filtered", action="store_true", help="print only the lines check_result compares"
    )
    p.add_argument("--prepare", action="store_true", help="only download and build; do not boot")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("scripts", nargs="*", metavar="SCRIPT")
    return p


def main(argv: list[str] | None = None, progress=None) -> int:
    """*progress*: klpsim.progress.progress, handed down by klpsim's command
    line (a bar on a terminal); without it, plain lines."""
    try:
        args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:  # --help (0) or a bad option (2, already reported)
        return e.code if isinstance(e.code, int) else 2
    # Heavy imports only now, so that "klpsim --help" stays light.
    from .api import prepare
    from .errors import VMError
    from .selftests import check_result_view, list_selftests, save_logs

    bar = None

    def log(msg: str) -> None:
        if args.quiet:
            return
        if bar is not None:
            bar.log(msg)
        else:
            print(f"klpsim vm: {msg}", file=sys.stderr, flush=True)

    def stage(label: str | None, total: int | None = None) -> None:
        """A progress display for the next stage (none when quiet or not
        handed one); None: close the current one."""
        nonlocal bar
        if bar is not None:
            bar.close()
        bar = None
        if label is not None and progress is not None and not args.quiet:
            bar = progress(label, total, prefix="klpsim vm")

    def advance(detail: str) -> None:
        if bar is not None:
            bar.advance(detail)

    def step(msg: str) -> None:
        """A message that is also one item done: plain lines say it once."""
        if bar is None:
            log(msg)
            return
        if not bar.plain:
            bar.log(msg)
        bar.advance(msg)

    if args.save_logs and not args.selftests:
        return _fail("--save-logs needs --selftests")
    if not (args.selftests or args.scripts or args.prepare):
        return _fail("nothing to do: give SCRIPT..., --selftests or --prepare")
    for s in [] if args.selftests else args.scripts:
        if not Path(s).is_file():
            return _fail(f"{s}: no such file")
    try:
        t0 = time.monotonic()
        stage(f"{args.kernel}: prepare", None)
        rk = prepare(args.kernel, log=step)
        log(f"{args.kernel}: {rk.kver} ready ({time.monotonic() - t0:.1f} s)")
        stage(None)
        if args.prepare:
            return 0
        status = 0
        with rk.boot() as vm:
            log(f"booted in {vm.boot_seconds[-1]:.1f} s")
            if args.selftests:
                names = args.scripts or list_selftests(rk.tree.selftests_dir)
                stage(f"{args.kernel}: selftests", len(names))
                results = []
                # run_selftests() logs each one; with a display, advance() says it
                rk.log = lambda msg: None if bar is not None else log(msg)
                for name in names:
                    results += rk.run_selftests(vm, [name])
                    r = results[-1]
                    advance(f"{name}: {len(r.passed)} ok, {len(r.failed)} not ok")
                rk.log = log
                stage(None)
                npass = sum(len(r.passed) for r in results)
                nfail = sum(len(r.failed) for r in results)
                bad = [r.name for r in results if not r.ok]
                print(
                    f"{args.kernel} ({rk.kver}): {npass} passed, {nfail} failed"
                    + (f"; scripts failing: {' '.join(bad)}" if bad else "")
                )
                if args.save_logs:
                    save_logs(
                        results, Path(args.save_logs) / args.kernel, f"{args.kernel}: {rk.kver}"
                    )
                status = 1 if bad else 0
            else:
                many = len(args.scripts) > 1
                stage(f"{args.kernel}: scripts", len(args.scripts) if many else None)
                for s in args.scripts:
                    try:
                        res = rk.run_script(vm, Path(s), args.modules)
                    except VMError as e:
                        if vm.proc is None:
                            raise
                        print(f"klpsim vm: {e}", file=sys.stderr)
                        status = 2
                        continue
                    lines = check_result_view(res.log_lines) if args.filtered else res.log_lines
                    if many:
                        print(f"==> {s} <==")
                    sys.stdout.write("".join(line + "\n" for line in lines))
                    sys.stdout.flush()
                    sys.stderr.write(res.stdout)
                    log(
                        f"{s}: exit {res.exit_status} ({res.seconds:.1f} s)"
                        + (", guest rebooted" if res.rebooted else "")
                    )
                    if res.exit_status != 0:
                        status = max(status, 1)
                    if many:
                        advance(f"{s}: exit {res.exit_status}")
                stage(None)
        log(f"total {time.monotonic() - t0:.1f} s")
        return status
    except VMError as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return _fail("interrupted")
