"""Where a running script's output goes.

Without ``--dmesg`` the runner writes a transcript: each command (``$ CMD``,
bold on a terminal), what it prints, and the kernel's log lines as they are
logged, timestamped like ``dmesg`` and coloured by level on a terminal.
Notes (``klpsim: note: ...``, model/notes.py) follow the events whose cause
the log does not show. With ``--dmesg`` only the script's stderr is shown
while it runs; the log is printed at the end.
"""

from typing import TextIO

from klpsim.kernel.printk import KERN_WARNING, LogRecord, Printk

__all__ = ["Output"]


class Output:
    """The script's stdout and stderr, and the transcript around them."""

    def __init__(
        self,
        out: TextIO,
        err: TextIO,
        transcript: bool = True,
        color: bool = False,
        show_stdout: bool | None = None,
    ):
        self.out = out
        self.err = err
        self.transcript = transcript
        self.color = color
        self.show_stdout = transcript if show_stdout is None else show_stdout
        """Print what commands print (a transcript does; --dmesg does not)."""
        self._mid_line = False  # e.g. after start_test's "TEST: NAME ... "

    def follow(self, log: Printk) -> None:
        """Show kernel log records as they are logged (a transcript only)."""
        if self.transcript:
            log.listeners.append(self._record)

    def _paint(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def _record(self, rec: LogRecord) -> None:
        if self._mid_line:
            self.out.write("\n")
            self._mid_line = False
        stamp = f"[{rec.ts_ns // 10**9:5d}.{rec.ts_ns // 1000 % 10**6:06d}] "
        for line in rec.text.split("\n"):
            color = "33" if rec.level <= KERN_WARNING else "36"
            self.out.write(self._paint(color, stamp + line) + "\n")
            stamp = " " * len(stamp)

    def note(self, text: str) -> None:
        """A ``klpsim: note:`` line (a transcript only: model/notes.py)."""
        if not self.transcript:
            return
        if self._mid_line:
            self.out.write("\n")
            self._mid_line = False
        self.out.write(self._paint("35", f"klpsim: note: {text}") + "\n")

    def command(self, text: str) -> None:
        """A transcript's ``$ CMD`` line."""
        if self.transcript:
            self.out.write(self._paint("1", f"$ {text}") + "\n")

    def stdout(self, text: str) -> None:
        if self.show_stdout and text:
            self.out.write(text)
            self._mid_line = not text.endswith("\n")

    def stderr(self, text: str) -> None:
        self.err.write(text)
