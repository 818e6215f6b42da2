"""Module parameters and the kernel's string parsers (lib/kstrtox.c, kernel/params.c)."""

from dataclasses import dataclass
from typing import Any

from klpsim.kernel.errno import EINVAL, ENOSPC, ERANGE

__all__ = [
    "kstrtobool",
    "kstrtoull",
    "kstrtoint",
    "ParamSpec",
    "ParamType",
    "PARAM_TYPES",
    "INT_RANGES",
    "param_type",
]

ParamType = str
"""A ``module_param()`` type (param_ops_<type>): one of :data:`PARAM_TYPES`."""

# param_set_<type>() of each integer type: the kstrto*() range it parses into
# (x86-64: long is 64 bits). hexint parses as uint and prints as %#08x.
INT_RANGES: dict[str, tuple[int, int]] = {
    "byte": (0, 2**8 - 1),
    "short": (-(2**15), 2**15 - 1),
    "ushort": (0, 2**16 - 1),
    "int": (-(2**31), 2**31 - 1),
    "uint": (0, 2**32 - 1),
    "hexint": (0, 2**32 - 1),
    "long": (-(2**63), 2**63 - 1),
    "ulong": (0, 2**64 - 1),
    "ullong": (0, 2**64 - 1),
}
SCALAR_TYPES = (*INT_RANGES, "bool", "invbool", "charp", "string")
"""The scalar types; ``string`` is module_param_string(), read as charp."""


def param_type(parmtype: str) -> ParamType | None:
    """The ParamType of a ``.modinfo`` ``parmtype=NAME:TYPE`` type (``int``,
    ``array of int``, ...), or None for a type the model does not know."""
    if parmtype.startswith("array of "):
        elem = parmtype.removeprefix("array of ")
        return f"{elem}_array" if elem in SCALAR_TYPES and elem != "string" else None
    return parmtype if parmtype in SCALAR_TYPES else None


def kstrtobool(s: str, enable_disable: bool = True) -> bool | int:
    """kstrtobool(): the first character decides; ``on``/``off`` too.

    ``e``/``E`` (true) and ``d``/``D`` (false) since 6.16, ae5b3500856f
    ("kstrtox: add support for enabled and disabled in kstrtobool()").
    """
    if not s:
        return -EINVAL
    c = s[0]
    if c in "yYtT1" or (enable_disable and c in "eE"):
        return True
    if c in "nNfF0" or (enable_disable and c in "dD"):
        return False
    if c in "oO" and len(s) > 1:
        if s[1] in "nN":
            return True
        if s[1] in "fF":
            return False
    return -EINVAL


_U64_DIGITS = {8: 22, 10: 20, 16: 16}
"""Digits of 2**64 - 1 in each base."""


def _kstrtoull(s: str, base: int = 0) -> int:
    """_kstrtoull(): the digits, then at most one newline; no sign.

    _parse_integer_fixup_radix(): base 0 reads ``0x`` before a hex digit as
    hex and a leading ``0`` as octal (base 16 skips a ``0x`` too).
    _parse_integer() takes the longest run of digits and flags an overflow,
    which is -ERANGE before anything else is looked at (``99...9x`` is
    -ERANGE, not -EINVAL); no digit at all, or anything after the digits
    but one newline, is -EINVAL.
    """
    hexprefix = s[:2].lower() == "0x" and len(s) > 2 and s[2] in "0123456789abcdefABCDEF"
    if base == 0:
        if hexprefix:
            base, s = 16, s[2:]
        elif s.startswith("0"):
            base = 8
        else:
            base = 10
    elif base == 16 and hexprefix:
        s = s[2:]
    digits = "0123456789abcdef"[:base]
    n = 0
    while n < len(s) and s[n].lower() in digits:
        n += 1
    # More significant digits than 2**64 - 1 has overflow without converting.
    significant = s[:n].lstrip("0")
    if len(significant) > _U64_DIGITS[base] or int(significant or "0", base) >= 2**64:
        return -ERANGE
    if n == 0:
        return -EINVAL
    rest = s[n:]
    if rest not in ("", "\n"):
        return -EINVAL
    return int(s[:n], base)


def kstrtoull(s: str, base: int = 0) -> int:
    """kstrtoull(): one leading ``+``, then _kstrtoull(); a non-negative
    value, or -EINVAL/-ERANGE."""
    return _kstrtoull(s[1:] if s.startswith("+") else s, base)


def kstrtoint(s: str, lo: int = -(2**31), hi: int = 2**31 - 1) -> tuple[int, int]:
    """kstrtoll()/kstrtoint(s, 0) within [lo, hi]: (0, value) or (-errno, 0).

    Only a signed target takes a ``-``, and kstrtoll() hands what follows it
    to _kstrtoull(), so ``-+1`` is -EINVAL; kstrtouint() refuses a ``-``
    (-EINVAL). A value that does not fit the target is -ERANGE.
    """
    negative = s.startswith("-")
    if negative and lo >= 0:
        return -EINVAL, 0
    value = _kstrtoull(s[1:]) if negative else kstrtoull(s)
    if value < 0:
        return value, 0
    value = -value if negative else value
    if not lo <= value <= hi:
        return -ERANGE, 0
    return 0, value


def _parse_int(s: str, lo: int, hi: int) -> tuple[int, int | None]:
    err, value = kstrtoint(s, lo, hi)
    return (err, None) if err else (0, value)


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One ``module_param()``: name, type, sysfs permission and default.

    A value is typed by ``type`` (int, bool, str or list[int]); only the
    module that declares the parameter knows which, as a C module knows its
    own variable, so values travel as ``Any``.
    """

    name: str
    type: ParamType
    perm: int
    default: Any

    def parse(self, text: str, enable_disable: bool = True) -> tuple[int, Any]:
        """Parse a value as param_set_<type>() does: (0, value) or (-errno, None)."""
        if self.type.endswith("_array"):
            # param_array_set(): comma-separated elements, each by its own type
            elem = ParamSpec(self.name, self.type.removesuffix("_array"), 0, None)
            values: list[Any] = []
            for part in text.rstrip("\n").split(","):
                err, v = elem.parse(part, enable_disable)
                if err:
                    return err, None
                values.append(v)
            return 0, values
        return _parse_scalar(self.type, text, enable_disable)

    def format(self, value: Any) -> str:
        """param_get_<type>() text, without the newline."""
        if self.type.endswith("_array"):
            elem = ParamSpec(self.name, self.type.removesuffix("_array"), 0, None)
            return ",".join(elem.format(v) for v in value)
        if self.type == "bool":
            return "Y" if value else "N"
        if self.type == "invbool":  # the variable holds the inverse
            return "N" if value else "Y"
        if self.type == "hexint":
            return f"{value:#08x}"
        return str(value)


def _parse_scalar(typ: str, text: str, enable_disable: bool) -> tuple[int, Any]:
    if typ in ("bool", "invbool"):
        value = kstrtobool(text, enable_disable)
        if isinstance(value, int) and not isinstance(value, bool):
            return value, None
        return 0, (not value) if typ == "invbool" else value
    if typ in INT_RANGES:
        return _parse_int(text, *INT_RANGES[typ])
    if typ in ("charp", "string"):
        if len(text) >= 1024:
            return -ENOSPC, None
        return 0, text  # param_set_charp() keeps a written newline
    raise ValueError(typ)


PARAM_TYPES = (*SCALAR_TYPES, *(f"{t}_array" for t in SCALAR_TYPES if t != "string"))
