"""The helper verbs of tools/testing/selftests/livepatch/functions.sh.

Each verb logs and waits as the kernel's helper does (selftests.md, 1.4);
waiting is loop_until: up to 600 retries 0.1 simulated seconds apart.
A failing helper dies: it logs ``ERROR: MSG`` and stops the script with
status 1.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from klpsim.kernel.fs import mode_string
from klpsim.scenario.runner import ScriptExit
from klpsim.scenario.verbs import REGISTRY, Arg, Opt

__all__ = ["filter_check_result", "die"]

SYSFS_KLP_DIR = "/sys/kernel/livepatch"
SYSFS_TRACING_DIR = "/sys/kernel/tracing"
MAX_RETRIES = 600
RETRY_INTERVAL_NS = 100_000_000


FAMILY = "functions.sh"
MOD = Arg("MOD")
LOADS = (Arg("MOD", module=True), Arg("ARG=VAL", optional=True, repeat=True))
WORDS = Arg("WORD", optional=True, repeat=True)


@dataclass
class HelperState:
    """What functions.sh keeps between helpers."""

    last_dmesg: int | None = None
    """The log record of the last start_test canary."""


def helper(name: str, *args: Arg, **kw: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a functions.sh helper."""
    return REGISTRY.verb(name, FAMILY, *args, **kw)


def die(rt, msg: str) -> NoReturn:
    rt.log(f"ERROR: {msg}")
    rt.stderr(f"ERROR: {msg}\n")
    raise ScriptExit(1)


def skip(rt, msg: str) -> NoReturn:
    rt.log(f"SKIP: {msg}")
    rt.stderr(f"SKIP: {msg}\n")
    raise ScriptExit(4)


def loop_until(rt, cond) -> bool:
    """Evaluate *cond* up to 601 times, 0.1 s apart."""
    for i in range(MAX_RETRIES + 1):
        if cond():
            return True
        if i == MAX_RETRIES:
            return False
        rt.advance(RETRY_INTERVAL_NS)
    return False


def _exists(rt, path: str) -> bool:
    return rt.fs.lookup(path) is not None


def _read(rt, path: str) -> str | None:
    data = rt.fs.read(path)
    return None if isinstance(data, int) else data.rstrip("\n")


def is_livepatch_mod(rt, mod: str) -> bool:
    """functions.sh runs ``modinfo`` on the module; libkmod's kmod_new()
    reads /proc/cmdline, which calls cmdline_proc_show() (seen on 6.1/6.12)."""
    rt.fs.read("/proc/cmdline")
    return rt.resolve_module(f"test_modules/{mod}.ko").livepatch


def _load_command(rt, mod: str, args: list[str]) -> list[str]:
    """``insmod test_modules/MOD.ko ARGS`` or, on 6.1's functions.sh, ``modprobe MOD ARGS``;
    the helper logs it as ``% COMMAND`` without a trailing space."""
    if rt.system.profile.helpers_load == "modprobe":
        cmd = ["modprobe", mod, *args]
    else:
        cmd = ["insmod", f"test_modules/{mod}.ko", *args]
    rt.log("% " + " ".join(cmd))
    return cmd


def __load_mod(rt, mod: str, args: list[str]) -> None:
    status, out, err = rt.shell(_load_command(rt, mod, args))
    ret = (out + err).rstrip("\n")
    if ret:
        die(rt, ret)
    if not loop_until(rt, lambda: _exists(rt, f"/sys/module/{mod}")):
        die(rt, f"failed to load module {mod}")


def assert_mod(rt, mod: str) -> None:
    """6.1's functions.sh checks a module with ``modprobe --dry-run`` first:
    one more kmod command, one more read of /proc/cmdline."""
    if rt.system.profile.helpers_load == "modprobe":
        rt.fs.read("/proc/cmdline")


@helper("load_mod", *LOADS)
def load_mod(rt, mod: str, *args: str) -> None:
    assert_mod(rt, mod)
    if is_livepatch_mod(rt, mod):
        die(rt, f"use load_lp() to load the livepatch module {mod}")
    __load_mod(rt, mod, list(args))


@helper("load_lp_nowait", *LOADS)
def load_lp_nowait(rt, mod: str, *args: str) -> None:
    assert_mod(rt, mod)
    if not is_livepatch_mod(rt, mod):
        die(rt, f"module {mod} is not a livepatch")
    __load_mod(rt, mod, list(args))
    if not loop_until(rt, lambda: _exists(rt, f"{SYSFS_KLP_DIR}/{mod}")):
        die(rt, f"failed to load module {mod}")


@helper("load_lp", *LOADS)
def load_lp(rt, mod: str, *args: str) -> None:
    load_lp_nowait(rt, mod, *args)
    if not loop_until(rt, lambda: _read(rt, f"{SYSFS_KLP_DIR}/{mod}/transition") == "0"):
        die(rt, "failed to complete transition")


@helper("load_failing_mod", *LOADS)
def load_failing_mod(rt, mod: str, *args: str) -> None:
    status, out, err = rt.shell(_load_command(rt, mod, list(args)))
    ret = (out + err).rstrip("\n")
    if not ret:
        die(rt, f"{mod} unexpectedly loaded")
    rt.log(ret)


@helper("unload_mod", MOD)
@helper("unload_lp", MOD)
def unload_mod(rt, mod: str) -> None:
    if not loop_until(rt, lambda: _read(rt, f"/sys/module/{mod}/refcnt") == "0"):
        die(rt, f"failed to unload module {mod} (refcnt)")
    rt.log(f"% rmmod {mod}")
    status, out, err = rt.shell(["rmmod", mod])
    ret = (out + err).rstrip("\n")
    if ret:
        die(rt, ret)
    if not loop_until(rt, lambda: not _exists(rt, f"/sys/module/{mod}")):
        die(rt, f"failed to unload module {mod} (/sys/module)")


@helper("disable_lp", MOD)
def disable_lp(rt, mod: str) -> None:
    path = f"{SYSFS_KLP_DIR}/{mod}/enabled"
    rt.log(f"% echo 0 > {path}")
    rt.write(path, "0\n")
    if not loop_until(rt, lambda: not _exists(rt, f"{SYSFS_KLP_DIR}/{mod}")):
        die(rt, f"failed to disable livepatch {mod}")


@helper("set_pre_patch_ret", MOD, Arg("RET"))
def set_pre_patch_ret(rt, mod: str, ret: str) -> None:
    path = f"/sys/module/{mod}/parameters/pre_patch_ret"
    rt.log(f"% echo {ret} > {path}")
    rt.write(path, f"{ret}\n")
    if not loop_until(rt, lambda: _read(rt, path) == ret):
        die(rt, f"failed to set pre_patch_ret parameter for {mod} module")


@helper("set_ftrace_enabled", Arg("VALUE"), opts=(Opt("--fail"),))
def set_ftrace_enabled(rt, *args: str) -> None:
    can_fail = "--fail" in args
    value = [a for a in args if a != "--fail"][-1]
    status, out, err = rt.shell(["sysctl", "-q", f"kernel.ftrace_enabled={value}"])
    result = _read(rt, "/proc/sys/kernel/ftrace_enabled")
    if result != value:
        if can_fail:
            rt.log("livepatch: " + (out + err).rstrip("\n").replace("/proc/sys/kernel/", "kernel."))
            return
        skip(rt, f"failed to set kernel.ftrace_enabled = {value}")
    rt.log(f"livepatch: kernel.ftrace_enabled = {result}")


@helper("check_sysfs_rights", MOD, Arg("REL"), Arg("RIGHTS"))
def check_sysfs_rights(rt, mod: str, rel: str, expected: str) -> None:
    path = f"{SYSFS_KLP_DIR}/{mod}/{rel}"
    node = rt.fs.lookup(path)
    rights = mode_string(node.mode) if node else ""
    if rights != expected:
        die(rt, f"Unexpected access rights of {path}: {expected} vs. {rights}")


@helper("check_sysfs_value", MOD, Arg("REL"), Arg("VALUE"))
def check_sysfs_value(rt, mod: str, rel: str, expected: str) -> None:
    path = f"{SYSFS_KLP_DIR}/{mod}/{rel}"
    value = _read(rt, path) or ""
    if value != expected:
        die(rt, f"Unexpected value in {path}: {expected} vs. {value}")


@helper("cleanup_tracing")
def cleanup_tracing(rt) -> None:
    for name, value in (
        ("tracing_on", "0"),
        ("set_ftrace_filter", ""),
        ("current_tracer", "nop"),
        ("trace", ""),
    ):
        rt.write(f"{SYSFS_TRACING_DIR}/{name}", value + "\n")


@helper("trace_function", Arg("FUNC"))
def trace_function(rt, func: str) -> None:
    cleanup_tracing(rt)
    rt.write(f"{SYSFS_TRACING_DIR}/current_tracer", "function\n")
    rt.write(f"{SYSFS_TRACING_DIR}/set_ftrace_filter", func + "\n")
    rt.write(f"{SYSFS_TRACING_DIR}/tracing_on", "1\n")


@helper("check_traced_functions", Arg("FUNC", optional=True, repeat=True))
def check_traced_functions(rt, *funcs: str) -> None:
    for func in funcs:
        status, _, _ = rt.shell(["grep", "-Fwq", func, f"{SYSFS_TRACING_DIR}/trace"])
        if status:
            die(rt, f"Function ({func}) did not appear in the trace")
    cleanup_tracing(rt)


@helper("start_test", Arg("NAME", optional=True, repeat=True))
def start_test(rt, *words: str) -> None:
    name = " ".join(words)
    rt.state(HelperState).last_dmesg = rt.log(f"livepatch kselftest timestamp: {rt.rfc3339_ns()}")
    rt.stdout(f"TEST: {name} ... ")
    rt.log(f"===== TEST: {name} =====")


_TIMESTAMP = re.compile(r"^\[[ 0-9.]*\] ")
_CALLER_ID = re.compile(r"^\[[ ]*[CT][0-9]*\] ")


def filter_check_result(lines: list[str]) -> list[str]:
    """The grep/sed pipeline of check_result(), on timestamped dmesg lines."""
    out = []
    for line in lines:
        if "livepatch:" not in line and "test_klp" not in line:
            continue
        if re.search(r"(tainting|taints) kernel", line):
            continue
        out.append(_CALLER_ID.sub("", _TIMESTAMP.sub("", line, count=1), count=1))
    return out


def dmesg_since_canary(rt) -> list[str]:
    """``dmesg`` from the record after the last start_test canary on."""
    log = rt.kernel.log
    last = rt.state(HelperState).last_dmesg
    start = 0 if last is None else last + 1
    saved, log.records = log.records, log.records[start:]
    try:
        return log.dmesg(notime=False)
    finally:
        log.records = saved


@helper("check_result", Arg("EXPECTED"))
def check_result(rt, expected: str) -> None:
    expect = expected.rstrip("\n")
    result = "\n".join(filter_check_result(dmesg_since_canary(rt))).rstrip("\n")
    if result == expect:
        rt.stdout("ok\n")
    elif not result:
        rt.stdout("not ok\n")
        die(rt, "livepatch kselftest(s) failed")
    else:
        import difflib  # only on a mismatch: start-up stays light

        diff = difflib.unified_diff(
            expect.split("\n"), result.split("\n"), "expected", "result", lineterm=""
        )
        rt.stdout("not ok\n")
        rt.stderr("\n".join(diff) + "\n")
        die(rt, "livepatch kselftest(s) failed")


def _first(words: tuple[str, ...]) -> str:
    """functions.sh's ``"$1"``: log, die and skip ignore any further words,
    so ``log a b`` logs ``a`` on a test machine and here."""
    return words[0] if words else ""


@helper("log", WORDS)
def log(rt, *words: str) -> None:
    rt.log(_first(words))


@helper("loop_until", Arg("COMMAND"), Arg("ARG", optional=True, repeat=True), runs_command=True)
def loop_until_verb(rt, *cmd: str) -> int:
    """functions.sh's ``loop_until CMD``: retry a command until it succeeds.

    As in functions.sh it returns 1 after 600 retries and does not die, so
    a script goes on (what a timeout changed shows in the log).
    """
    if loop_until(rt, lambda: rt.shell(list(cmd))[0] == 0):
        return 0
    rt.stderr(f"loop_until: gave up after {MAX_RETRIES} retries: {' '.join(cmd)}\n")
    return 1


@helper("die", WORDS)
def die_verb(rt, *words: str) -> None:
    die(rt, _first(words))


@helper("skip", WORDS)
def skip_verb(rt, *words: str) -> None:
    skip(rt, _first(words))
