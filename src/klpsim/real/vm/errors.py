"""Errors raised by the real-kernel (VM) tier.

Every error that reaches the command line is one line, with no traceback:
the ``klpsim vm`` entry point prints ``klpsim vm: <message>`` and exits 2.
"""

from __future__ import annotations

__all__ = ["VMError", "GuestTimeout", "GuestDied"]


class VMError(Exception):
    """Something the tier needs is missing or failed (exit status 2)."""


class GuestDied(VMError):
    """QEMU exited, or the guest stopped answering on its command channel."""


class GuestTimeout(VMError):
    """A guest command did not finish within its deadline."""
