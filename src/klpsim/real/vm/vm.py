"""A persistent QEMU guest driven over a serial port.

QEMU runs with TCG (KVM is unusable on this machine kind, see real-artifacts.md
part 3) and two UARTs: ttyS0 is the kernel console and goes to a file;
ttyS1 is the command channel, connected to this process through QEMU's
stdio.  The guest's agent (data/agent.sh) answers one request at a time with
``KLP-RC <status> <bytes>`` followed by exactly that many bytes, so nothing
here sleeps for a fixed time: every wait is a read with a deadline.

One boot serves many scripts.  After each script the guest runs
data/reset.sh (disable every livepatch, unload every module, restore ftrace,
clear the ring buffer); when that fails, the guest is rebooted.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .debian import KernelTree
from .errors import GuestDied, GuestTimeout, VMError

__all__ = ["VM", "VMResult", "qemu_command", "GUEST_CMDLINE"]

# norandmaps: under TCG a process whose libraries sit at new addresses has
# its code translated again; without user-space ASLR an exec of a dynamically
# linked tool costs 8 ms instead of 37 ms (100-exec loops in the 6.12 guest).
# The kernel's own layout (KASLR) is untouched.
GUEST_CMDLINE = "console=ttyS0 loglevel=4 panic=-1 8250.nr_uarts=4 norandmaps"


@dataclass
class VMResult:
    """What one script did in the guest."""

    log_lines: list[str]
    """The kernel log during the script: ``dmesg --notime``, one line each."""
    exit_status: int
    """The script's exit status (1 when a helper died or check_result differed)."""
    stdout: str
    """The script's stdout and stderr, interleaved as written."""
    rebooted: bool = False
    """True when the guest could not be cleaned up and was rebooted after it."""
    seconds: float = 0.0
    """Wall time of the script itself."""
    extra: dict = field(default_factory=dict)


def qemu_command(tree: KernelTree, initrd: Path, console_log: Path, memory: str) -> list[str]:
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise VMError("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
    return [
        qemu,
        "-machine",
        "q35,accel=tcg",
        "-cpu",
        "max",
        "-smp",
        "1",
        "-m",
        memory,
        "-display",
        "none",
        "-monitor",
        "none",
        "-no-reboot",
        "-net",
        "none",
        "-serial",
        f"file:{console_log}",
        "-serial",
        "stdio",
        "-kernel",
        str(tree.vmlinuz),
        "-initrd",
        str(initrd),
        "-append",
        GUEST_CMDLINE,
    ]


class VM:
    """One QEMU guest booted from ``tree`` and ``initrd``.

    Use as a context manager, or call :meth:`start` and :meth:`close`.
    """

    def __init__(
        self,
        tree: KernelTree,
        initrd: Path,
        workdir: Path,
        memory: str = "512M",
        boot_timeout: float = 300.0,
        on_boot=None,
    ):
        self.tree = tree
        self.initrd = initrd
        self.workdir = workdir
        self.memory = memory
        self.boot_timeout = boot_timeout
        self.on_boot = on_boot
        self.console_log = workdir / "console.log"
        self.proc: subprocess.Popen | None = None
        self._buf = bytearray()
        self.boots = 0
        self.boot_seconds: list[float] = []
        self.reset_failures: list[str] = []

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> VM:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = qemu_command(self.tree, self.initrd, self.console_log, self.memory)
        t0 = time.monotonic()
        with open(self.workdir / "qemu.stderr", "wb") as err:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, bufsize=0
            )
        self._buf.clear()
        deadline = time.monotonic() + self.boot_timeout
        while True:
            line = self._readline(deadline, "boot")
            if line.startswith("KLP-READY"):
                break
        self.boots += 1
        self.boot_seconds.append(time.monotonic() - t0)
        if self.on_boot is not None:
            self.on_boot(self)

    def close(self) -> None:
        p = self.proc
        self.proc = None
        if p is None:
            return
        assert p.stdin is not None and p.stdout is not None  # both are pipes
        if p.poll() is None:
            try:
                p.stdin.write(b"BYE\n")
                p.stdin.flush()
                p.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                p.kill()
                p.wait()
        for f in (p.stdin, p.stdout):
            with contextlib.suppress(OSError):
                f.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.close()

    def reboot(self) -> None:
        self.kill()
        self.start()

    # -------------------------------------------------------------- channel

    def _console_tail(self, n: int = 15) -> str:
        try:
            lines = self.console_log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return " | ".join(ln.strip() for ln in lines[-n:] if ln.strip())

    def _fill(self, deadline: float, what: str) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GuestTimeout(f"guest did not answer within the deadline ({what})")
        r, _, _ = select.select([fd], [], [], min(remaining, 5.0))
        if not r:
            if self.proc.poll() is not None:
                raise GuestDied(f"QEMU exited ({what}); console: {self._console_tail()}")
            return
        chunk = os.read(fd, 65536)
        if not chunk:
            self.proc.wait()
            raise GuestDied(f"QEMU exited ({what}); console: {self._console_tail()}")
        self._buf += chunk

    def _readline(self, deadline: float, what: str) -> str:
        while b"\n" not in self._buf:
            self._fill(deadline, what)
        i = self._buf.index(b"\n")
        line = bytes(self._buf[:i]).decode(errors="replace").rstrip("\r")
        del self._buf[: i + 1]
        return line

    def _read_exact(self, n: int, deadline: float, what: str) -> bytes:
        while len(self._buf) < n:
            self._fill(deadline, what)
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _write(self, data: bytes, deadline: float, what: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        fd = self.proc.stdin.fileno()
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GuestTimeout(f"guest stopped reading ({what})")
            _, w, _ = select.select([], [fd], [], min(remaining, 5.0))
            if w:
                try:
                    n = os.write(fd, view[:4096])
                except BrokenPipeError:
                    raise GuestDied(f"QEMU exited ({what})") from None
                view = view[n:]
            elif self.proc.poll() is not None:
                raise GuestDied(f"QEMU exited ({what})")

    def request(self, line: str, payload: bytes = b"", timeout: float = 300.0) -> tuple[int, bytes]:
        """Send one request line (and payload); return (status, output)."""
        if self.proc is None:
            raise GuestDied("the guest is not running")
        if "\n" in line:
            raise ValueError("a request is one line")
        deadline = time.monotonic() + timeout
        what = line[:60]
        self._write(line.encode() + b"\n" + payload, deadline, what)
        while True:
            head = self._readline(deadline, what)
            if head.startswith("KLP-RC "):
                break
        _, rc, size = head.split()
        return int(rc), self._read_exact(int(size), deadline, what)

    # ------------------------------------------------------------------ API

    def run(self, command: str, timeout: float = 300.0) -> tuple[int, str]:
        """Run one shell command line in the guest with bash."""
        rc, out = self.request("RUN " + command, timeout=timeout)
        return rc, out.decode(errors="replace")

    def put(self, guest_path: str, data: bytes, timeout: float = 120.0) -> None:
        """Write ``data`` to ``guest_path`` in the guest."""
        if " " in guest_path:
            raise ValueError("guest paths have no spaces")
        rc, _ = self.request(f"PUT {guest_path} {len(data)}", data, timeout=timeout)
        if rc != 0:
            raise VMError(f"could not write {guest_path} in the guest")

    def dmesg(self) -> list[str]:
        rc, out = self.run("dmesg --notime")
        if rc != 0:
            raise VMError(f"dmesg failed in the guest: {out.strip()}")
        return out.splitlines()

    def reset(self) -> bool:
        """Clean state for the next script; returns True when it rebooted."""
        try:
            rc, out = self.run("/klp/reset.sh", timeout=90)
        except GuestTimeout:
            rc, out = -1, "timeout"
        except GuestDied:
            rc, out = -2, "guest died"
        if rc == 0:
            return False
        self.reset_failures.append(out.strip())
        self.reboot()
        return True

    def run_guest_script(
        self, text: str, runner: str, timeout: float = 900.0, reset: bool = True
    ) -> VMResult:
        """Copy ``text`` into the guest, run it with ``runner``, collect the log."""
        self.run("mkdir -p /tmp/klp-run")
        self.put("/tmp/klp-run/script.sh", text.encode())
        t0 = time.monotonic()
        try:
            rc, out = self.run(f"{runner} /tmp/klp-run/script.sh", timeout=timeout)
        except (GuestTimeout, GuestDied) as e:
            self.kill()
            self.start()
            return VMResult([], 124, f"klpsim vm: {e}\n", rebooted=True)
        secs = time.monotonic() - t0
        log = self.dmesg()
        rebooted = self.reset() if reset else False
        return VMResult(log, rc, out, rebooted=rebooted, seconds=secs)
