"""``klpsim diff``: the same scenario scripts on the model and on a real kernel.

    klpsim diff --kernel 6.1|6.12|replace-set [--modules DIR]... [--output] SCRIPT...

Each script runs on the model's profile of that kernel and in one booted
QEMU guest of the real kernel (Debian's, or 6.12 built with the replace_set
rules, whose profile is ``replace-set-6.12``: real/vm's model_profile()).
The two kernel logs are filtered as
functions.sh's check_result filters them (lines with ``livepatch:`` or
``test_klp``, no taint notices) and compared; a mismatch prints a unified
diff. Exit 1 if any script differs.

Before comparing, the guest's log loses what the kernel's own
``setup_config`` logged before the script's first line (the model starts in
that configured state), and both logs start after the first
``start_test`` canary when the script has one.

With ``--output`` the scripts' own output (stdout and stderr, interleaved)
is compared too, after :func:`normalize_output` has replaced what differs
between any two boots or builds (addresses, function sizes, timestamps,
task names and pids, the shell's error prefix, the kernel command line,
graph durations); each script then runs in a freshly booted guest, since
tracefs keeps state no reset undoes (the sticky M flag, a WARN_ONCE, an ops
a failed disarm leaves registered).
"""

import difflib
import io
import re
from dataclasses import dataclass
from pathlib import Path

from klpsim.livepatch.profiles import Profile
from klpsim.model.system import System
from klpsim.real.vm import model_profile
from klpsim.real.vm.vm import GUEST_CMDLINE
from klpsim.scenario.helpers import filter_check_result
from klpsim.scenario.parser import decode_script
from klpsim.session import Session

__all__ = [
    "run_model",
    "model_log",
    "model_output",
    "comparable",
    "compare",
    "normalize_output",
    "DiffResult",
    "diff_one",
    "diff_scripts",
]

CANARY = "livepatch kselftest timestamp:"
SETUP_CONFIG_LINES = ("livepatch: kernel.ftrace_enabled = 1",)


def run_model(
    text: str, path: Path, kernel: str, module_dirs: list[Path], texts: dict[str, str] | None = None
) -> tuple[int, System]:
    """Run a script on a freshly booted model of real *kernel* (its profile,
    model_profile()): (exit status, the System after it)."""
    session = Session(
        model_profile(kernel),
        module_dirs=module_dirs,
        script_dir=path.parent,
        definitions=texts,
        path=str(path),
    )
    return session.run(text), session.system


def model_log(
    text: str, path: Path, kernel: str, module_dirs: list[Path], texts: dict[str, str] | None = None
) -> tuple[int, list[str]]:
    """Run a script on the model: (exit status, ``dmesg --notime`` lines)."""
    status, system = run_model(text, path, kernel, module_dirs, texts)
    return status, system.kernel.log.dmesg(notime=True)


def model_output(
    text: str,
    path: Path,
    kernel: str | Profile,
    module_dirs: list[Path],
    texts: dict[str, str] | None = None,
    config: dict[str, bool] | None = None,
) -> tuple[int, list[str], str]:
    """Run a script on the model: (status, ``dmesg --notime`` lines, the
    script's stdout and stderr as one stream, as the guest's agent captures
    it). *config*: CONFIG_ options set or cleared on the profile's."""
    out = io.StringIO()
    session = Session(
        model_profile(kernel) if isinstance(kernel, str) else kernel,
        config=config,
        module_dirs=module_dirs,
        script_dir=path.parent,
        definitions=texts,
        path=str(path),
        out=out,
        err=out,
    )
    status = session.run(text)
    system = session.system
    return status, system.kernel.log.dmesg(notime=True), out.getvalue()


# What differs between two boots or two builds of the same kernel, and
# between the model and a guest, in a script's output.
_CMDLINES = (
    "BOOT_IMAGE=/boot/vmlinuz root=/dev/vda ro console=ttyS0",  # the model's
    GUEST_CMDLINE,
)
_NORMALIZE = [
    (re.compile(r"/tmp/klp-run/script\.sh: line \d+: "), "bash: "),
    (re.compile(r"bash: line \d+: "), "bash: "),
    (re.compile(r"\b[0-9a-f]{16}(  [kr]  )"), r"ADDR\1"),  # kprobes/list
    (re.compile(r"tramp: 0x[0-9a-f]+ "), "tramp: ADDR "),
    (re.compile(r"(\+0x[0-9a-f]+)/0x[0-9a-f]+"), r"\1/SIZE"),  # %pS
    # need-resched (the context's 2nd column) depends on timer ticks
    (
        re.compile(r"^ *\S+-\d+ +\[(\d{3})\] (.)[.N](...) +\d+\.\d{6}: ", re.M),
        r"TASK-PID [\1] \2.\3 TS: ",
    ),
    (re.compile(r"#P:\d+"), "#P:N"),
    (re.compile(r"^\[ *\d+\.\d{6}\] ", re.M), "[TS] "),  # error_log
    (re.compile(r"^( \d+\) )[ +!#*@$] +\d+(\.\d+)? us +\|", re.M), r"\1DURATION |"),
    (re.compile(r"\(\S+ <- "), "(CALLER <- "),
    # the call verb's task: the model's shell, the guest's klpsim-bpf
    (re.compile(r"^(call \S+ from )\S+:\d+$", re.M), r"\1TASK:PID"),
]


_KPROBE_LINE = re.compile(r"ADDR  [kr]  (\S+)  ")


def _sort_kprobe_lists(lines: list[str]) -> list[str]:
    """kprobes/list walks kprobe_table by hash_ptr() of the address, which
    differs between any two kernels: order each run of its lines by probed
    address (stable, so the probes of one aggregate keep their order)."""
    out: list[str] = []
    run: list[str] = []
    for line in [*lines, ""]:
        if _KPROBE_LINE.search(line):
            run.append(line)
            continue
        out.extend(sorted(run, key=lambda ln: _KPROBE_LINE.search(ln).group(1)))  # type: ignore[union-attr]
        run = []
        out.append(line)
    return out[:-1]


_ATTACHMENTS_HEAD = re.compile(r"^NAME +TYPE +TARGET +PROGRAM +HITS(?: +STATE +NOTE)?$")
_ATTACHMENTS_ROW = re.compile(r"^\S+ +\S+ +\S+ +(?:-|override -?\d+|returns -?\d+) +\d+$")


def _attachment_columns(lines: list[str]) -> list[str]:
    """bpf_attachments tables cut to the columns a real kernel can show
    (NAME to HITS): STATE and NOTE are the model's analysis of the next call."""
    out: list[str] = []
    cut = None
    for line in lines:
        if _ATTACHMENTS_HEAD.match(line):
            cut = line.find("  STATE") if "  STATE" in line else None
        elif cut is not None and not _ATTACHMENTS_ROW.match(line[:cut].rstrip()):
            cut = None
        out.append(line[:cut].rstrip() if cut is not None else line)
    return out


def normalize_output(text: str) -> str:
    """A script's output with run-specific details replaced (see module doc)."""
    for cmdline in _CMDLINES:
        text = text.replace(cmdline, "<cmdline>")
    for rx, repl in _NORMALIZE:
        text = rx.sub(repl, text)
    # start_test prints "TEST: NAME ... " without a newline: what follows
    # starts a line of its own.
    text = re.sub(r"^(TEST: .*? \.\.\. )(?=\S)", "\\1\n", text, flags=re.M)
    return "\n".join(_attachment_columns(_sort_kprobe_lists(text.split("\n"))))


def comparable(lines: list[str], from_guest: bool) -> list[str]:
    """The lines check_result would compare, from the first canary on."""
    starts = [i for i, line in enumerate(lines) if line.startswith(CANARY)]
    if starts:
        lines = filter_check_result(lines[starts[0] + 1 :])
    else:
        lines = filter_check_result(lines)
        # No canary (6.1's functions.sh has none): setup_config's line comes
        # first among the lines check_result keeps, whatever the kernel logged
        # before it (a guest's first script follows the boot messages).
        while from_guest and lines and lines[0] in SETUP_CONFIG_LINES:
            lines = lines[1:]
    return [_LAST_UNLOADED.sub(r"\1", line) for line in lines]


# print_modules()'s "[last unloaded: MOD]" names what the guest unloaded
# before the script (the harness's taint module, an earlier script's): not
# the script's doing, so neither side's counts.
_LAST_UNLOADED = re.compile(r"^(Modules linked in:.*) \[last unloaded: [^]]*\]$")


def compare(name: str, model: list[str], real: list[str]) -> str:
    """A unified diff (empty when equal)."""
    if model == real:
        return ""
    return (
        "\n".join(
            difflib.unified_diff(model, real, f"{name} (klpsim)", f"{name} (real)", lineterm="")
        )
        + "\n"
    )


@dataclass
class DiffResult:
    """One script on both sides."""

    diff: str
    """The unified diffs of what differs ("" if nothing)."""
    model_log: list[str]
    """The model's ``dmesg --notime``."""
    real_log: list[str]
    """The guest's ``dmesg --notime`` during the script."""
    real_output: str = ""
    """The script's output in the guest (stdout and stderr, as written)."""
    real_status: int = 0
    """The script's exit status in the guest."""


def diff_one(
    rk,
    vm,
    path: Path,
    kernel: str | Profile,
    module_dirs: list[Path],
    output: bool,
    config: dict[str, bool] | None = None,
) -> DiffResult:
    """Run one script on both sides and compare the filtered logs, and with
    *output* the normalized output. *kernel* names the model's profile and
    *config* the options its build differs in (``rk`` is the real kernel)."""
    text = decode_script(path.read_bytes())
    _, model, model_out = model_output(text, path, kernel, module_dirs, config=config)
    res = rk.run_script(vm, path, [str(d) for d in module_dirs])
    d = compare(str(path), comparable(model, False), comparable(res.log_lines, True))
    if output:
        mine = normalize_output(model_out).splitlines()
        theirs = normalize_output(res.stdout).splitlines()
        d += compare(f"{path} output", mine, theirs)
    return DiffResult(d, model, res.log_lines, res.stdout, res.exit_status)


def diff_scripts(
    kernel: str,
    scripts: list[Path],
    module_dirs: list[Path],
    out,
    log,
    output: bool = False,
    step=None,
) -> int:
    """Run *scripts* on both sides; print diffs to *out*; 1 if any differ.
    With *output*, each script gets a freshly booted guest.  *step(detail)*:
    one script is done (a progress display); without it, *log* says so."""
    from klpsim.real.vm.api import prepare

    rk = prepare(kernel, log=log)
    mismatches = 0
    vm = rk.boot()
    try:
        for i, path in enumerate(scripts):
            if output and i:
                vm.close()
                vm = rk.boot()
            d = diff_one(rk, vm, path, kernel, module_dirs, output).diff
            if d:
                mismatches += 1
                out.write(d)
            (step or log)(f"{path}: {'DIFFERS' if d else 'same'}")
    finally:
        vm.close()
    return 1 if mismatches else 0
