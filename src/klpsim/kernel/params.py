"""Module parameters and the kernel's string parsers (lib/kstrtox.c, kernel/params.c)."""

from dataclasses import dataclass
from typing import Any

from klpsim.kernel.errno import EINVAL, ERANGE

__all__ = ["kstrtobool", "kstrtoint", "ParamSpec", "PARAM_TYPES"]


def kstrtobool(s: str) -> bool | int:
    """kstrtobool(): the first character decides; ``on``/``off`` too."""
    if not s:
        return -EINVAL
    c = s[0]
    if c in "yYtT1":
        return True
    if c in "nNfF0":
        return False
    if c in "oO" and len(s) > 1:
        if s[1] in "nN":
            return True
        if s[1] in "fF":
            return False
    return -EINVAL


def kstrtoint(s: str, lo: int = -(2**31), hi: int = 2**31 - 1) -> int | None:
    """kstrtoint(s, 0): base prefix allowed, one trailing newline allowed."""
    if s.endswith("\n"):
        s = s[:-1]
    try:
        value = int(s, 0)
    except ValueError:
        return None
    return value if lo <= value <= hi else None


def _parse_int(s: str, lo: int, hi: int) -> tuple[int, Any]:
    value = kstrtoint(s, lo, hi)
    if value is None:
        return (-ERANGE if _is_number(s) else -EINVAL), None
    return 0, value


def _is_number(s: str) -> bool:
    try:
        int(s.strip(), 0)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One ``module_param()``: name, type, sysfs permission and default."""

    name: str
    type: str  # int, uint, bool, charp, int_array
    perm: int
    default: Any

    def parse(self, text: str) -> tuple[int, Any]:
        """Parse a value as param_set_<type>() does: (0, value) or (-errno, None)."""
        if self.type == "bool":
            value = kstrtobool(text.rstrip("\n") if text else text)
            return (
                (value, None)
                if isinstance(value, int) and not isinstance(value, bool)
                else (0, value)
            )
        if self.type == "int":
            return _parse_int(text, -(2**31), 2**31 - 1)
        if self.type == "uint":
            return _parse_int(text, 0, 2**32 - 1)
        if self.type == "charp":
            return 0, text.rstrip("\n")
        if self.type == "int_array":
            values = []
            for part in text.rstrip("\n").split(","):
                err, v = _parse_int(part, -(2**31), 2**31 - 1)
                if err:
                    return err, None
                values.append(v)
            return 0, values
        raise ValueError(self.type)

    def format(self, value: Any) -> str:
        """param_get_<type>() text, without the newline."""
        if self.type == "bool":
            return "Y" if value else "N"
        if self.type == "int_array":
            return ",".join(str(v) for v in value)
        return str(value)


PARAM_TYPES = ("int", "uint", "bool", "charp", "int_array")
