"""``klpsim vm``: run scenario scripts (or the kernel's selftests) on a real kernel.

    klpsim vm [--kernel 6.1|6.12] [--modules DIR]... [--filtered] SCRIPT...
    klpsim vm [--kernel 6.1|6.12] --selftests [--save-logs DIR] [TEST...]
    klpsim vm [--kernel 6.1|6.12] --prepare

The first run downloads Debian's kernel packages and builds the test modules
(cached under ``${XDG_CACHE_HOME:-~/.cache}/klpsim``); every run then boots
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

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        raise SystemExit(_fail(message))


def _fail(message: str) -> int:
    from klpsim.kernel.printk import escape

    print(f"klpsim vm: {escape(message)}", file=sys.stderr)
    return 2


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="klpsim vm", description="Run scenario scripts on a real Debian kernel.")
    p.add_argument("--kernel", default="6.12", choices=["6.1", "6.12"], help="default: 6.12")
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


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:  # --help (0) or a bad option (2, already reported)
        return e.code if isinstance(e.code, int) else 2
    # Heavy imports only now, so that "klpsim --help" stays light.
    from .api import prepare
    from .errors import VMError
    from .selftests import check_result_view, save_logs

    def log(msg: str) -> None:
        if not args.quiet:
            print(f"klpsim vm: {msg}", file=sys.stderr, flush=True)

    if args.save_logs and not args.selftests:
        return _fail("--save-logs needs --selftests")
    if not (args.selftests or args.scripts or args.prepare):
        return _fail("nothing to do: give SCRIPT..., --selftests or --prepare")
    for s in [] if args.selftests else args.scripts:
        if not Path(s).is_file():
            return _fail(f"{s}: no such file")
    try:
        t0 = time.monotonic()
        rk = prepare(args.kernel, log=log)
        log(f"{args.kernel}: {rk.kver} ready ({time.monotonic() - t0:.1f} s)")
        if args.prepare:
            return 0
        status = 0
        with rk.boot() as vm:
            log(f"booted in {vm.boot_seconds[-1]:.1f} s")
            if args.selftests:
                names = args.scripts or None
                results = rk.run_selftests(vm, names)
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
        log(f"total {time.monotonic() - t0:.1f} s")
        return status
    except VMError as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return _fail("interrupted")
