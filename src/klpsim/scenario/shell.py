"""The plain shell commands a scenario may use, run against the simulated kernel.

Each command returns (exit status, stdout, stderr) with the texts the real
tools print (coreutils, grep, kmod, procps), so that a failing command
looks the same here as on a test machine.
"""

import functools
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from klpsim.kernel.errno import EAGAIN, EEXIST, EINVAL, ENOENT, ENOEXEC, ESRCH, strerror
from klpsim.kernel.fs import mode_string
from klpsim.scenario.verbs import REGISTRY, Arg, Result, checked_by
from klpsim.trace.trace_kprobe import TRACING, not_modelled

__all__ = ["bre_to_python", "insmod_strerror", "modprobe_strerror", "sleep_ns", "KTIME_MAX"]

FAMILY = "shell"
ANY = Arg("ARG", optional=True, repeat=True)
KTIME_MAX = 2**63 - 1
"""The kernel's clock (ktime_t) counts nanoseconds in an s64."""


def command(name: str, *args: Arg, **kw: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a shell command (its output is captured and may be redirected)."""
    return REGISTRY.verb(name, FAMILY, *(args or (ANY,)), command=True, **kw)


def _err(status: int, text: str) -> Result:
    return status, "", text + "\n"


@command("cat")
def cat(rt, args: list[str]) -> Result:
    out, err, status = [], [], 0
    for path in args:
        data = rt.fs.read(path)
        if isinstance(data, int):
            err.append(f"cat: {path}: {strerror(data)}\n")
            status = 1
        else:
            out.append(data)
    return status, "".join(out), "".join(err)


@command("ls")
def ls(rt, args: list[str]) -> Result:
    flags = [a for a in args if a.startswith("-")]
    paths = [a for a in args if not a.startswith("-")] or ["."]
    long = any("l" in f for f in flags)
    out, err, status = [], [], 0
    for path in paths:
        node = rt.fs.lookup(path)
        if node is None:
            err.append(f"ls: cannot access '{path}': No such file or directory\n")
            status = 2
            continue
        if len(paths) > 1 and node.is_dir:
            out.append(f"{path}:\n")
        names = sorted(node.children) if node.is_dir else [path]
        for name in names:
            if long:
                child = node.children[name] if node.is_dir else node
                out.append(f"{mode_string(child.mode)} 1 root root 0 {name}\n")
            else:
                out.append(name + "\n")
    return status, "".join(out), "".join(err)


def echo_output(args: Sequence[str]) -> str:
    """What ``echo ARGS`` prints."""
    newline = True
    while args and args[0] in ("-n", "-e", "-ne", "-en"):
        newline = newline and "n" not in args[0]
        args = args[1:]
    return " ".join(args) + ("\n" if newline else "")


@command("echo", prints=echo_output)
def echo(rt, args: list[str]) -> Result:
    return 0, echo_output(args), ""


# What the model cannot write to kprobe_events (trace_kprobe.py): refused
# before the script runs when echo writes it.
REGISTRY.target(f"{TRACING}/kprobe_events", not_modelled)
REGISTRY.target(f"{TRACING}/dynamic_events", lambda text: not_modelled(text, dynamic=True))


def bre_to_python(pattern: str, extended: bool = False) -> str:
    """Translate a grep basic (or extended) regular expression to Python's re."""
    if extended:
        return pattern
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append(
                {
                    "(": "(",
                    ")": ")",
                    "|": "|",
                    "{": "{",
                    "}": "}",
                    "+": "+",
                    "?": "?",
                    "s": r"\s",
                    "S": r"\S",
                    "w": r"\w",
                    "W": r"\W",
                    "<": r"\b",
                    ">": r"\b",
                    "b": r"\b",
                }.get(nxt, re.escape(nxt))
            )
            i += 2
            continue
        out.append(
            {
                "(": r"\(",
                ")": r"\)",
                "|": r"\|",
                "{": r"\{",
                "}": r"\}",
                "+": r"\+",
                "?": r"\?",
            }.get(c, c)
        )
        i += 1
    return "".join(out)


@command("grep")
def grep(rt, args: list[str]) -> Result:
    opts: set[str] = set()
    rest: list[str] = []
    it = iter(args)
    for a in it:
        if a == "-e":
            rest.insert(0, next(it, ""))
            opts.add("pattern-given")
        elif a.startswith("-") and len(a) > 1 and not rest:
            opts.update(a[1:])
        else:
            rest.append(a)
    if not rest:
        return _err(2, "Usage: grep [OPTION]... PATTERNS [FILE]...")
    pattern, files = rest[0], rest[1:]
    # -H names the file on every line, -h on none; by default only when
    # there are several files.
    names = "H" in opts or (len(files) > 1 and "h" not in opts)
    regex = re.escape(pattern) if "F" in opts else bre_to_python(pattern, "E" in opts)
    if "w" in opts:
        regex = rf"(?<![\w]){regex}(?![\w])"
    if "x" in opts:
        regex = rf"^(?:{regex})$"
    try:
        rx = re.compile(regex, re.IGNORECASE if "i" in opts else 0)
    except re.error as e:
        return _err(2, f"grep: {e}")
    out, err, matched, status = [], [], 0, None
    for path in files:
        data = rt.fs.read(path)
        if isinstance(data, int):
            err.append(f"grep: {path}: {strerror(data)}\n")
            status = 2
            continue
        count = 0
        for line in data.splitlines():
            if bool(rx.search(line)) != ("v" in opts):
                count += 1
                if "c" not in opts and "q" not in opts:
                    out.append((f"{path}:" if names else "") + line + "\n")
        if "c" in opts and "q" not in opts:
            out.append((f"{path}:" if names else "") + f"{count}\n")
        matched += count
    if "q" in opts and matched:
        return 0, "", ""
    if status is None:
        status = 0 if matched else 1
    return status, "".join(out), "".join(err)


def insmod_strerror(err: int) -> str:
    """kmod's tools/insmod.c mod_strerror(): insmod's wording for an
    init_module() error; every other errno is strerror()'s (so a second load
    of a live module ends in "File exists")."""
    return {
        -ENOEXEC: "Invalid module format",
        -ENOENT: "Unknown symbol in module",
        -ESRCH: "Module has wrong symbol version",
        -EINVAL: "Invalid parameters",
    }.get(err, strerror(err))


def modprobe_strerror(err: int) -> str:
    """kmod's tools/modprobe.c insmod(): its two special cases, then strerror()."""
    return {
        -EEXIST: "Module already in kernel",
        -ENOENT: "Unknown symbol in module, or unknown parameter (see dmesg)",
    }.get(err, strerror(err))


def _kmod_new(rt) -> str:
    """libkmod's kmod_new() reads /proc/cmdline (module options given on the
    kernel command line), so every insmod, rmmod and modprobe calls
    cmdline_proc_show(), and whatever probes it fires (seen on Debian's
    kernels: a kprobe on it logs at each kmod command). A read that fails
    (a patched show() returning an error) is logged by libkmod's default
    log function, log_filep(), with the priority, file and line that
    Debian's kmod 30 (built with ENABLE_DEBUG) prints, as measured in the
    guest; the command goes on (kmod_config_new() ignores the error).
    Returns what it writes to stderr."""
    data = rt.fs.read("/proc/cmdline")
    if isinstance(data, int):
        return (
            "libkmod: ERROR ../libkmod/libkmod-config.c:521 kmod_config_parse_kcmdline: "
            "could not read from "
            f"'/proc/cmdline': {strerror(data)}\n"
        )
    return ""


def _kmod(fn: Callable[[Any, list[str]], Result]) -> Callable[[Any, list[str]], Result]:
    """A kmod tool: kmod_new() first (its stderr line, if any, comes first)."""

    @functools.wraps(fn)
    def tool(rt, args: list[str]) -> Result:
        if not args:
            return fn(rt, args)
        pre = _kmod_new(rt)
        status, out, err = fn(rt, args)
        return status, out, pre + err

    return tool


@command("insmod", Arg("FILE", optional=True, module=True), ANY)
@_kmod
def insmod(rt, args: list[str]) -> Result:
    if not args:
        return _err(1, "insmod: ERROR: missing filename.")
    path, params = args[0], args[1:]
    if "/" not in path and not path.endswith(".ko"):
        # A module name: the real-kernel harness's insmod wrapper (klpsim.sh)
        # loads test_modules/NAME.ko, and insmod names that path.
        path = f"test_modules/{path}.ko"
    spec = rt.resolve_module(path)
    ret = rt.kernel.modules.load_module(spec, params)
    if ret:
        return _err(1, f"insmod: ERROR: could not insert module {path}: {insmod_strerror(ret)}")
    return 0, "", ""


@command("modprobe", Arg("MOD", optional=True, module=True), ANY)
@_kmod
def modprobe(rt, args: list[str]) -> Result:
    """modprobe MOD [ARGS]: load by name; kmod's error wording."""
    if not args:
        return _err(1, "modprobe: ERROR: missing parameters. See -h.")
    name, params = args[0], args[1:]
    spec = rt.resolve_module(name)
    if rt.kernel.modules.find_module(spec.name) is not None:
        return 0, "", ""
    ret = rt.kernel.modules.load_module(spec, params)
    if ret:
        return _err(1, f"modprobe: ERROR: could not insert '{spec.name}': {modprobe_strerror(ret)}")
    return 0, "", ""


@command("rmmod")
@_kmod
def rmmod(rt, args: list[str]) -> Result:
    if not args:
        return _err(1, "rmmod: ERROR: missing module name.")
    name = args[0]
    if name.endswith(".ko"):
        name = name.rsplit("/", 1)[-1][:-3]
    name = name.replace("-", "_")
    mod = rt.kernel.modules.find_module(name)
    if mod is None:
        return _err(1, f"rmmod: ERROR: Module {name} is not currently loaded")
    if mod.refcnt:
        return _err(1, f"rmmod: ERROR: Module {name} is in use")
    ret = rt.kernel.modules.delete_module(name)
    if ret == -EAGAIN:
        return _err(1, f"rmmod: ERROR: Module {name} is in use")
    if ret:
        return _err(1, f"rmmod: ERROR: could not remove module {name}: {strerror(ret)}")
    return 0, "", ""


_SLEEP_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_FLOAT = r"\+?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|\+?inf(inity)?"


def sleep_ns(word: str) -> int:
    """coreutils' sleep interval: a number with an optional s, m, h or d, in
    nanoseconds of simulated time. ValueError says why it is none."""
    number, unit = word, 1
    if word[-1:] in _SLEEP_UNITS:
        number, unit = word[:-1], _SLEEP_UNITS[word[-1]]
    if not re.fullmatch(_FLOAT, number, re.IGNORECASE):
        raise ValueError(f"invalid time interval '{word}'")
    seconds = float(number) * unit
    if math.isinf(seconds) or seconds * 1e9 > KTIME_MAX:
        raise ValueError(f"'{word}' never ends: the simulated clock stops at KTIME_MAX (292 years)")
    return int(seconds * 1e9)


@command("sleep", Arg("NUMBER", repeat=True, check=checked_by(sleep_ns)))
def sleep(rt, args: list[str]) -> Result:
    ns = sum(sleep_ns(a) for a in args)
    if rt.kernel.clock.now + ns > KTIME_MAX:
        return _err(1, "sleep: the simulated clock stops at KTIME_MAX (292 years)")
    rt.advance(ns)
    return 0, "", ""


@command("dmesg")
def dmesg(rt, args: list[str]) -> Result:
    lines = rt.kernel.log.dmesg(notime="--notime" in args or "-t" in args)
    return 0, "".join(line + "\n" for line in lines), ""


@command("sysctl")
def sysctl(rt, args: list[str]) -> Result:
    quiet = "-q" in args
    values_only = "-n" in args or "--values" in args
    out, err, status = [], [], 0
    for arg in (a for a in args if not a.startswith("-")):
        key, eq, value = arg.partition("=")
        path = "/proc/sys/" + key.replace(".", "/")
        if eq:
            ret = rt.fs.write(path, value + "\n")
            if ret < 0:
                if ret == -ENOENT:
                    err.append(f"sysctl: cannot stat {path}: No such file or directory\n")
                else:
                    err.append(f'sysctl: setting key "{path}": {strerror(ret)}\n')
                status = 1
            elif not quiet:
                out.append(f"{key} = {value}\n")
        else:
            data = rt.fs.read(path)
            if isinstance(data, int):
                err.append(f"sysctl: cannot stat {path}: No such file or directory\n")
                status = 1
            else:
                out.append(data if values_only else f"{key} = {data}")
    return status, "".join(out), "".join(err)


@command("test")
def test(rt, args: list[str]) -> Result:
    negate = bool(args) and args[0] == "!"
    if negate:
        args = args[1:]
    if len(args) == 2 and args[0] in ("-e", "-f", "-d", "-r", "-w"):
        node = rt.fs.lookup(args[1])
        ok = (
            node is not None
            and {
                "-e": True,
                "-f": node is not None and not node.is_dir,
                "-d": node is not None and node.is_dir,
                "-r": node is not None and bool(node.mode & 0o444),
                "-w": node is not None and bool(node.mode & 0o222),
            }[args[0]]
        )
    elif len(args) == 3 and args[1] in ("=", "==", "!="):
        ok = (args[0] == args[2]) != (args[1] == "!=")
    elif len(args) == 1:
        ok = args[0] != ""
    else:
        return _err(2, "test: unsupported expression")
    return (0 if ok != negate else 1), "", ""


@command("getconf")
def getconf(rt, args: list[str]) -> Result:
    if args == ["_NPROCESSORS_ONLN"]:
        return 0, f"{sum(rt.kernel.sched.cpu_online)}\n", ""
    return _err(1, f"getconf: Unrecognized variable '{' '.join(args)}'")


@command("stat")
def stat(rt, args: list[str]) -> Result:
    fmt = None
    paths = []
    it = iter(args)
    for a in it:
        if a in ("-c", "--format"):
            fmt = next(it, "")
        elif a.startswith("--format="):
            fmt = a.split("=", 1)[1]
        else:
            paths.append(a)
    if fmt != "%A":
        return _err(1, "stat: only --format '%A' is supported")
    out = []
    for path in paths:
        node = rt.fs.lookup(path)
        if node is None:
            return _err(1, f"stat: cannot statx '{path}': No such file or directory")
        out.append(mode_string(node.mode) + "\n")
    return 0, "".join(out), ""


@command("true")
def true(rt, args: list[str]) -> Result:
    return 0, "", ""


@command("false")
def false(rt, args: list[str]) -> Result:
    return 1, "", ""
