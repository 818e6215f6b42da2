"""A small reader of C initialisers: what a livepatch module's source declares.

Enough C for the kernel's livepatch test modules and samples, and for
klpsim's own layout fixtures: comments, object-like ``#define``s,
``#if``/``#ifdef`` on ``defined(...)`` (x86-64), string concatenation,
``__stringify()``, and designated initialisers of static arrays and structs.
Anything else it meets is an error, so that a test never compares against
a misread source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CSource", "CError"]

#: What the compiler defines for an x86-64 kernel module build.
_DEFINED = {"__x86_64__", "__KERNEL__", "MODULE", "CONFIG_X86_64"}


class CError(Exception):
    pass


def _strip_comments(text: str) -> str:
    out = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"' or c == "'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("/*", i):
            j = text.index("*/", i + 2)
            out.append(" " + "\n" * text.count("\n", i, j))
            i = j + 2
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _condition(expr: str, macros: dict[str, str]) -> bool:
    expr = re.sub(
        r"defined\s*\(\s*(\w+)\s*\)|defined\s+(\w+)",
        lambda m: (
            "1"
            if (m.group(1) or m.group(2)) in _DEFINED or (m.group(1) or m.group(2)) in macros
            else "0"
        ),
        expr,
    )
    expr = re.sub(r"\b[A-Za-z_]\w*\b", lambda m: macros.get(m.group(0), "0"), expr)
    expr = expr.replace("&&", " and ").replace("||", " or ").replace("!", " not ")
    if not re.fullmatch(r"[\d\s()andortn]*", expr):
        raise CError(f"#if {expr!r}: not understood")
    return bool(eval(expr))  # only digits, parentheses and boolean operators


@dataclass
class CSource:
    """The preprocessed text and object-like macros of one C file."""

    text: str
    macros: dict[str, str]

    @classmethod
    def parse(cls, raw: str, include_dir: Path | None = None, depth: int = 0) -> CSource:
        """Preprocess ``raw``; ``#include "file"`` is read from ``include_dir``."""
        raw = _strip_comments(raw.replace("\\\n", " "))
        macros: dict[str, str] = {}
        out = []
        stack: list[tuple[bool, bool]] = []  # (this branch taken, any branch taken)
        for line in raw.splitlines():
            s = line.strip()
            live = all(t for t, _ in stack)
            m = re.match(r"#\s*(\w+)\s*(.*)", s)
            if not m:
                if live:
                    out.append(line)
                continue
            d, rest = m.group(1), m.group(2).strip()
            if d in ("if", "ifdef", "ifndef"):
                if d == "ifdef":
                    t = rest in _DEFINED or rest in macros
                elif d == "ifndef":
                    t = not (rest in _DEFINED or rest in macros)
                else:
                    t = _condition(rest, macros)
                stack.append((t, t))
            elif d == "elif":
                t0, any_ = stack.pop()
                t = not any_ and _condition(rest, macros)
                stack.append((t, any_ or t))
            elif d == "else":
                t0, any_ = stack.pop()
                stack.append((not any_, True))
            elif d == "endif":
                stack.pop()
            elif d == "define" and live:
                dm = re.match(r"(\w+)(\(?)\s*(.*)", rest)
                if dm and not dm.group(2):
                    macros[dm.group(1)] = dm.group(3).strip()
            elif d == "include" and live and rest.startswith('"'):
                if include_dir is None or depth > 8:
                    raise CError(f"#include {rest}: no directory to read it from")
                inner = CSource.parse(
                    (include_dir / rest.strip('"')).read_text(), include_dir, depth + 1
                )
                macros.update(inner.macros)
                out.extend(inner.text.splitlines())
            elif d in ("include", "undef", "pragma", "error", "warning") or not live:
                pass
            else:
                raise CError(f"#{d}: not understood")
        return cls("\n".join(out), macros)

    # ------------------------------------------------------------ values

    def expand(self, expr: str, depth: int = 0) -> str:
        if depth > 20:
            raise CError(f"macro loop in {expr!r}")

        def one(m: re.Match) -> str:
            name = m.group(0)
            if name in self.macros:
                return self.expand(self.macros[name], depth + 1)
            return name

        # __stringify(X): the expansion of X, as a string literal.
        expr = re.sub(
            r"__stringify\(\s*(\w+)\s*\)",
            lambda m: '"' + self.expand(m.group(1), depth + 1) + '"',
            expr,
        )
        parts = re.split(r'("(?:[^"\\]|\\.)*")', expr)
        return "".join(
            p if p.startswith('"') else re.sub(r"\b[A-Za-z_]\w*\b", one, p) for p in parts
        )

    def value(self, expr: str):
        """A C constant: int, bool, None (NULL), str (string literals), or an identifier."""
        e = self.expand(expr.strip()).strip()
        while e.startswith("(") and e.endswith(")"):
            e = e[1:-1].strip()
        if e == "NULL":
            return None
        if e == "true":
            return True
        if e == "false":
            return False
        if re.fullmatch(r'(\s*"(?:[^"\\]|\\.)*"\s*)+', e):
            return "".join(
                bytes(s, "utf-8").decode("unicode_escape")
                for s in re.findall(r'"((?:[^"\\]|\\.)*)"', e)
            )
        if re.fullmatch(r"0[xX][0-9a-fA-F]+|\d+", e):
            return int(e, 0)
        if re.fullmatch(r"[A-Za-z_]\w*", e):
            return e
        raise CError(f"{expr!r}: not a constant this reader knows")

    # ------------------------------------------------------ initialisers

    def initializer(self, struct: str, name: str | None = None) -> tuple[str, str]:
        """(variable, body) of ``struct <struct> <var>[] = { body }``; the only one,
        or the one named ``name``."""
        found = self.initializers(struct)
        if name is not None:
            if name not in found:
                raise CError(f"no struct {struct} {name}")
            return name, found[name]
        if len(found) != 1:
            raise CError(f"{len(found)} struct {struct} initialisers")
        return next(iter(found.items()))

    def initializers(self, struct: str) -> dict[str, str]:
        out = {}
        pat = re.compile(
            r"\bstruct\s+" + re.escape(struct) + r"\s+(\w+)\s*(?:\[\s*\w*\s*\])?"
            r"[^;={]*=\s*\{"
        )
        for m in pat.finditer(self.text):
            out[m.group(1)] = _braced(self.text, m.end() - 1)
        return out

    def elements(self, body: str) -> list[str]:
        """The elements of an array initialiser body."""
        return [e for e in _split(body) if e.strip()]

    def fields(self, element: str) -> dict[str, str] | None:
        """``{ .a = x, .b = { ... } }`` -> {"a": "x", "b": "{ ... }"}; None for ``{ }``."""
        e = element.strip()
        if not (e.startswith("{") and e.endswith("}")):
            raise CError(f"{e[:40]!r}: not a braced initialiser")
        inner = e[1:-1].strip()
        if not inner:
            return None
        out = {}
        for part in _split(inner):
            if not part.strip():
                continue
            m = re.fullmatch(r"\s*\.(\w+)\s*=\s*(.*)", part, re.S)
            if not m:
                raise CError(f"{part.strip()[:40]!r}: not a designated initialiser")
            out[m.group(1)] = m.group(2).strip()
        return out

    def calls(self, macro: str) -> list[list[str]]:
        """Arguments of every ``macro(...)`` use outside #define lines."""
        out = []
        for m in re.finditer(r"\b" + re.escape(macro) + r"\s*\(", self.text):
            args = _braced(self.text, m.end() - 1, "(", ")")
            out.append([a.strip() for a in _split(args)])
        return out


def _braced(text: str, start: int, open_: str = "{", close: str = "}") -> str:
    """The text between the bracket at ``start`` and its match."""
    depth = 0
    i = start
    while i < len(text):
        c = text[i]
        if c == '"':
            i += 1
            while text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
        i += 1
    raise CError("unbalanced brackets")


def _split(body: str) -> list[str]:
    """Split at the commas that are not inside brackets or strings."""
    parts, depth, cur, i = [], 0, [], 0
    while i < len(body):
        c = body[i]
        if c == '"':
            j = i + 1
            while body[j] != '"':
                j += 2 if body[j] == "\\" else 1
            cur.append(body[i : j + 1])
            i = j + 1
            continue
        if c in "{([":
            depth += 1
        elif c in "})]":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts
