"""Error numbers, as in include/uapi/asm-generic/errno-base.h and errno.h.

Inside the model an error travels back to its caller as a negative int,
exactly as in the kernel; user space (the simulated shell) turns it into
strerror text.
"""

__all__ = ["strerror", "errno_name"]

EPERM = 1
ENOENT = 2
ESRCH = 3
EINTR = 4
EIO = 5
ENOEXEC = 8
EBADF = 9
EAGAIN = 11
ENOMEM = 12
EACCES = 13
EFAULT = 14
EBUSY = 16
EEXIST = 17
ENODEV = 19
ENOTDIR = 20
EISDIR = 21
EINVAL = 22
ENOSPC = 28
E2BIG = 7
ERANGE = 34
EILSEQ = 84
ENAMETOOLONG = 36
ENOSYS = 38
ENOTEMPTY = 39
EOPNOTSUPP = 95
EADDRINUSE = 98
EADDRNOTAVAIL = 99
ECANCELED = 125

_TEXT = {
    EPERM: "Operation not permitted",
    ENOENT: "No such file or directory",
    ESRCH: "No such process",
    EINTR: "Interrupted system call",
    EIO: "Input/output error",
    ENOEXEC: "Exec format error",
    EBADF: "Bad file descriptor",
    EAGAIN: "Resource temporarily unavailable",
    ENOMEM: "Cannot allocate memory",
    EACCES: "Permission denied",
    EFAULT: "Bad address",
    EBUSY: "Device or resource busy",
    EEXIST: "File exists",
    ENODEV: "No such device",
    ENOTDIR: "Not a directory",
    EISDIR: "Is a directory",
    EINVAL: "Invalid argument",
    ENOSPC: "No space left on device",
    ERANGE: "Numerical result out of range",
    ENAMETOOLONG: "File name too long",
    ENOSYS: "Function not implemented",
    ENOTEMPTY: "Directory not empty",
    EOPNOTSUPP: "Operation not supported",
    EADDRINUSE: "Address already in use",
    E2BIG: "Argument list too long",
    EILSEQ: "Invalid or incomplete multibyte or wide character",
    EADDRNOTAVAIL: "Cannot assign requested address",
    ECANCELED: "Operation canceled",
}
_NAMES = {v: k for k, v in globals().items() if k.startswith("E") and isinstance(v, int)}


def strerror(err: int) -> str:
    """glibc's strerror() text for an errno (sign ignored)."""
    return _TEXT.get(abs(err), f"Unknown error {abs(err)}")


def errno_name(err: int) -> str:
    """Symbolic name, e.g. ``EBUSY`` for -16."""
    return _NAMES.get(abs(err), str(err))
