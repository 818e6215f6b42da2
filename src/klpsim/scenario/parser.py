"""Parse a scenario script into commands, splitting words exactly as bash does.

A script is the part of bash in which a line means the same to bash and to
klpsim: one simple command a line, words made of plain characters, single
quotes, double quotes (nothing expands inside), backslash escapes and
backslash-newline continuations, ``#`` comments at the start of a word, and at
most one ``> FILE`` or ``>> FILE``. Everything bash would expand (braces,
tildes, ``$``, backquotes, globs) or that would combine or alter commands
(``|``, ``;``, ``&``, subshells, other redirections, keywords, assignments) is
refused with the line and column of the character that starts it.

The tokenizer is one left-to-right pass of a compiled regular expression;
each word's parts are joined once, so the time is linear in the script.
"""

import heapq
import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import NoReturn

__all__ = [
    "Command",
    "ScriptError",
    "parse_script",
    "decode_script",
    "printable",
    "FIRST_PID",
    "PID_HINT",
]

FIRST_PID = 1001
"""The pid of a script's first spawn_task (its shell is 1000: kernel/machine.py)."""
PID_HINT = (
    f"pids are deterministic (spawn_task prints each new one, counting from {FIRST_PID}), "
    "so write the number"
)
"""What a script that names a pid by a variable or a word is told, by the
tokenizer (``$PID``) and by the pid arguments of the verbs (``PID``)."""


def printable(s: str) -> str:
    """*s* on one line: control and other non-printable characters escaped (``\\n``, ``\\x1b``)."""
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else _escape_char(c) for c in s)


def _escape_char(c: str) -> str:
    named = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
    if c in named:
        return named[c]
    o = ord(c)
    if o < 0x100:
        return f"\\x{o:02x}"
    return f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


class ScriptError(Exception):
    """A script that cannot be read or run: names the file, line and (when known) column."""

    def __init__(self, path: str, line: int, message: str, column: int | None = None):
        super().__init__(path, line, message, column)
        self.path = path
        self.line = line
        self.message = message
        self.column = column
        """1-based column (in characters) of the offending character, or None."""

    def __str__(self) -> str:
        col = "" if self.column is None else f":{self.column}"
        return printable(f"{self.path}:{self.line}{col}: {self.message}")


@dataclass(frozen=True, slots=True)
class Command:
    """One command line of a script."""

    line: int
    """1-based line where the command starts."""
    words: tuple[str, ...]
    redirect: tuple[str, str] | None = None
    """('>' or '>>', path) if the output is redirected."""
    text: str = ""
    """The command as written (for the transcript)."""


# One step of the lexer, outside quotes. Metacharacters end a word; a plain
# run is everything else (backslash escapes included), analysed per word once
# the word is complete. A lone backslash can only be the script's last character.
_STEP = re.compile(
    r"""
      (?P<blank>[ \t]+)
    | (?P<cont>\\\n)
    | (?P<newline>\n)
    | (?P<plain>(?=[^ \t\n'"\\|&;()<>]|\\[^\n])[^ \t\n'"\\|&;()<>]*(?:\\[^\n][^ \t\n'"\\|&;()<>]*)*)
    | (?P<escape>\\)
    | (?P<squote>'(?P<sbody>[^']*)(?P<sclose>')?)
    | (?P<dquote>"(?P<dbody>[^"\\]*(?:\\[\s\S][^"\\]*)*)(?P<dclose>")?)
    | (?P<meta>[|&;()<>])
    """,
    re.VERBOSE,
)
# A line of words with nothing bash treats specially, read with str.split
# (most lines of most scripts): no quotes, escapes, comments, operators or
# expansions, and a command name that is no keyword or assignment.
_SIMPLE_LINE = re.compile(
    r"[ \t]*([^\s'\"\\|&;()<>$`*?\[{~#=!}\]]+(?:[ \t]+[^\s'\"\\|&;()<>$`*?\[{~#]+)*)[ \t]*(?:\n|\Z)"
)
# Control characters (tab and newline excepted), NUL, and lone surrogates
# (undecodable bytes under surrogateescape).
_BAD_CHAR = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# Unquoted characters that can start an expansion; a word without any is plain.
_TRIGGER = re.compile(r"[$`*?\[{~]")
_DQ_SPECIAL = re.compile(r"\\[\s\S]|[$`]")
_ESCAPED = re.compile(r"\\([\s\S])")
_DQ_ESCAPE = re.compile(r"\\(?:\n|([$`\"\\]))")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]]*\])?\+?=")
_SUBSCRIPT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\[")
_GLOB = re.compile(r"[*?\[\]/]")
_BRACE_EVENT = re.compile(r"[{},]|\.(?=\.(?!\}))")
_COMMA_SCAN = re.compile(r"\\[\s\S]|,")
_DIGITS = re.compile(r"[0-9]+")
_NAMED_FD = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
_VARIABLE = re.compile(r"\$(?:\{([^}]*)\}?|([A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-]))")

_INTMAX = 2**63 - 1
_INTMIN = -(2**63)
_INT_MAX = 2**31 - 1

# Bash's reserved words: special only as the first token of a command.
_RESERVED = {
    "!": "negates a pipeline's status",
    "{": "opens a group command",
    "}": "closes a group command",
    "[[": "a conditional command: use 'test'",
    "]]": "closes a conditional command",
    "if": "control flow",
    "then": "control flow",
    "else": "control flow",
    "elif": "control flow",
    "fi": "control flow",
    "case": "control flow",
    "esac": "control flow",
    "for": "a loop",
    "select": "a loop",
    "while": "a loop",
    "until": "a loop",
    "do": "a loop",
    "done": "a loop",
    "in": "part of for, select and case",
    "function": "a function definition",
    "time": "times a pipeline",
    "coproc": "a coprocess",
}

# Word parts: (kind, source offset, raw text as written, value). Kinds:
_PLAIN, _QUOTED = 0, 1


def decode_script(data: bytes) -> str:
    """A script file's text as parse_script() takes it: undecodable bytes
    become lone surrogates and a CR stays a CR, so the parser names either
    with its line and column instead of failing to read the file."""
    return data.decode("utf-8", errors="surrogateescape")


def parse_script(text: str, path: str = "<script>") -> list[Command]:
    """Split *text* into commands; raise ScriptError on what bash would do differently."""
    return _Lexer(text, path).run()


class _Lexer:
    """One pass over a script (bash's read_token/read_token_word, for the subset above)."""

    def __init__(self, text: str, path: str):
        self.text = text
        self.path = path

    def error(self, offset: int, message: str) -> ScriptError:
        text = self.text
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        return ScriptError(self.path, line, message, column)

    def run(self) -> list[Command]:
        text, n = self.text, len(self.text)
        bad = _BAD_CHAR.search(text)
        if bad is not None:
            raise self.error(bad.start(), _bad_char_message(bad.group()))
        step = _STEP.match
        commands: list[Command] = []
        line = 1
        pos = 0
        # The word being read: its parts, and whether a plain part holds a
        # character that may start an expansion.
        parts: list[tuple[int, int, str, str]] = []
        trigger = False
        # The command being read.
        words: list[str] = []
        cmd_start = -1  # offset of its first token
        cmd_line = 0
        first_is_word = False  # its first token is a word (keywords count there)
        redirect: tuple[str, str] | None = None
        redirect_at = -1
        pending: str | None = None  # a '>' or '>>' waiting for its file name
        pending_at = -1

        def end_word() -> None:
            nonlocal trigger, redirect, pending
            if pending is not None:
                target = self.word(parts, trigger, "target")
                if target == "":
                    raise self.error(parts[0][1], f"an empty file name after '{pending}'")
                redirect = (pending, target)
                pending = None
            else:
                words.append(self.word(parts, trigger, "first" if not words else "arg"))
                if len(words) == 1 and first_is_word:
                    self.check_keyword(parts)
            parts.clear()
            trigger = False

        def end_command(end: int) -> None:
            nonlocal words, redirect, pending, cmd_start, first_is_word
            if pending is not None:
                raise self.error(pending_at, f"'{pending}' needs a file name")
            if cmd_start >= 0:
                if not words:
                    raise self.error(redirect_at, "a redirection needs a command")
                commands.append(
                    Command(cmd_line, tuple(words), redirect, text[cmd_start:end].strip())
                )
            words = []
            redirect = None
            cmd_start = -1
            first_is_word = False

        simple = _SIMPLE_LINE.match
        while pos < n:
            if cmd_start < 0:
                s = simple(text, pos)
                if s is not None and s.end() > pos:
                    fast = s.group(1).split()
                    if fast[0] not in _RESERVED:
                        commands.append(Command(line, tuple(fast), None, s.group(1)))
                        line += 1
                        pos = s.end()
                        continue
            m = step(text, pos)
            assert m is not None  # every character starts some step
            kind = m.lastgroup
            end = m.end()
            if kind == "plain":
                raw = m.group()
                if not parts:
                    if raw[0] == "#" and pending is None:
                        # A comment: to the end of the line (no continuation).
                        nl = text.find("\n", pos)
                        pos = n if nl < 0 else nl
                        continue
                    if raw[0] == "#":  # '> #...': the comment swallows the file name
                        raise self.error(pending_at, f"'{pending}' needs a file name")
                    if cmd_start < 0:
                        cmd_start, cmd_line, first_is_word = pos, line, True
                parts.append((_PLAIN, pos, raw, _unescape(raw) if "\\" in raw else raw))
                if not trigger and _TRIGGER.search(raw):
                    trigger = True
            elif kind == "blank":
                if parts:
                    end_word()
            elif kind == "newline":
                if parts:
                    end_word()
                end_command(pos)
                line += 1
            elif kind == "cont":
                line += 1
            elif kind == "escape":
                # A backslash at the very end of the script stays a backslash.
                if not parts and cmd_start < 0:
                    cmd_start, cmd_line, first_is_word = pos, line, True
                parts.append((_QUOTED, pos, "\\", "\\"))
            elif kind == "squote":
                raw = m.group()
                if not parts and cmd_start < 0:
                    cmd_start, cmd_line, first_is_word = pos, line, True
                parts.append((_QUOTED, pos, raw, m.group("sbody")))
                if m.group("sclose") is None:
                    self.raise_in_word(parts, trigger, pos, "unterminated single quote")
                line += raw.count("\n")
            elif kind == "dquote":
                raw = m.group()
                body = m.group("dbody")
                if not parts and cmd_start < 0:
                    cmd_start, cmd_line, first_is_word = pos, line, True
                parts.append((_QUOTED, pos, raw, _dquote_value(body)))
                if "$" in body or "`" in body:
                    for e in _DQ_SPECIAL.finditer(body):
                        if e.group() in "$`":
                            at = pos + 1 + e.start()
                            self.raise_in_word(parts, trigger, at, _dollar_message(text, at, True))
                if m.group("dclose") is None:
                    self.raise_in_word(parts, trigger, pos, "unterminated double quote")
                line += raw.count("\n")
            else:  # a metacharacter
                c = m.group()
                if c != ">":
                    self.raise_in_word(parts, trigger, pos, _meta_message(text, pos))
                op, end = _redirect_op(text, pos)
                if parts:
                    self.check_fd_word(parts, op)
                    end_word()
                if cmd_start < 0:
                    cmd_start, cmd_line = pos, line
                if op not in (">", ">>"):
                    raise self.error(pos, _redirect_message(op))
                if pending is not None:
                    raise self.error(pending_at, f"'{pending}' needs a file name")
                if redirect is not None:
                    raise self.error(pos, "only one redirection per command")
                pending, pending_at, redirect_at = op, pos, pos
                line += text.count("\n", pos, end)  # continuations inside '>>'
            pos = end
        if parts:
            end_word()
        end_command(n)
        return commands

    # --- words -------------------------------------------------------------------

    def word(self, parts: list[tuple[int, int, str, str]], trigger: bool, role: str) -> str:
        """The value of a complete word; ScriptError if bash would expand it."""
        if trigger or role == "first":
            offence = self.offence(parts, role)
            if offence is not None:
                raise self.error(*offence)
        if len(parts) == 1:
            return parts[0][3]
        return "".join(p[3] for p in parts)

    def raise_in_word(
        self, parts: list[tuple[int, int, str, str]], trigger: bool, at: int, message: str
    ) -> NoReturn:
        """Raise the first offence of the word so far, else *message* at *at*."""
        offence = self.offence(parts, "arg") if trigger else None
        if offence is not None and offence[0] < at:
            raise self.error(*offence)
        raise self.error(at, message)

    def check_keyword(self, parts: list[tuple[int, int, str, str]]) -> None:
        if all(p[0] == _PLAIN for p in parts) and (w := "".join(p[2] for p in parts)) in _RESERVED:
            raise self.error(
                parts[0][1],
                f"'{w}' is a bash keyword here ({_RESERVED[w]}): "
                "scripts are one simple command a line",
            )

    def check_fd_word(self, parts: list[tuple[int, int, str, str]], op: str) -> None:
        """A word right before '>' that bash reads as a file descriptor (2>, {fd}>)."""
        if any(p[0] != _PLAIN for p in parts):
            return
        raw = "".join(p[2] for p in parts)
        if _DIGITS.fullmatch(raw) and len(raw.lstrip("0")) <= 10 and int(raw) <= _INT_MAX:
            raise self.error(
                parts[0][1],
                f"'{raw}{op}' redirects file descriptor {int(raw)}: "
                "only '> FILE' and '>> FILE' (standard output) are supported",
            )
        if _NAMED_FD.fullmatch(raw):
            raise self.error(
                parts[0][1],
                f"'{raw}{op}' is a redirection to a named file descriptor: "
                "only '> FILE' and '>> FILE' are supported",
            )

    def offence(self, parts: list[tuple[int, int, str, str]], role: str) -> tuple[int, str] | None:
        """(source offset, message) of the first thing bash would expand or treat specially."""
        raw = "".join(p[2] for p in parts)
        # The word with every quoted character replaced by NUL (never in a script).
        mask = "".join(
            (_ESCAPED.sub("\0\0", p[2]) if "\\" in p[2] else p[2])
            if p[0] == _PLAIN
            else "\0" * len(p[2])
            for p in parts
        )
        found: list[tuple[int, str]] = []
        assignment = _ASSIGNMENT.match(mask)
        if role == "first":
            if assignment is not None:
                name = assignment.group()[:-1].rstrip("+")
                found.append(
                    (
                        0,
                        f"'{_excerpt(raw, 0)}' assigns the shell variable {name}: scripts have "
                        "no variables (quote the word if it is a command name)",
                    )
                )
            elif _SUBSCRIPT.match(mask):
                # parse.y reads 'name[...]' in a command name as an array subscript.
                found.append(
                    (
                        0,
                        f"'{_excerpt(raw, 0)}' starts with an array subscript in bash: "
                        "quote the word",
                    )
                )
        if "~" in mask:
            found += _tildes(raw, mask, assignment)
        d = _first_of(mask, "$`")
        if d >= 0:
            found.append((d, ""))  # message made below, from the source
        glob = _glob(raw, mask)
        if glob is not None:
            found.append(glob)
        if "{" in mask and "}" in mask:
            brace = _brace_expansion(raw, mask)
            if brace is not None:
                b, close = brace
                found.append(
                    (
                        b,
                        f"'{_excerpt(raw[b : close + 1], 0)}' is brace expansion (bash makes several "
                        "words of it): write the words out, or quote the braces",
                    )
                )
        if not found:
            return None
        index, message = min(found)
        starts = [0]
        for p in parts:
            starts.append(starts[-1] + len(p[2]))
        k = bisect_right(starts, index) - 1
        offset = parts[k][1] + index - starts[k]
        if not message:
            message = _dollar_message(self.text, offset, False)
        return offset, message


def _first_of(s: str, chars: str) -> int:
    found = [i for i in (s.find(c) for c in chars) if i >= 0]
    return min(found) if found else -1


def _excerpt(s: str, start: int, limit: int = 40) -> str:
    s = s[start:]
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _unescape(raw: str) -> str:
    # A function, not the template r"\1": re.sub expands templates slowly.
    return _ESCAPED.sub(lambda m: m.group(1), raw)


def _dquote_value(body: str) -> str:
    """A double-quoted string's value: backslash quotes only $ ` " \\ and newline."""
    if "\\" not in body:
        return body
    return _DQ_ESCAPE.sub(lambda m: m.group(1) or "", body)


def _tildes(raw: str, mask: str, assignment: re.Match[str] | None) -> list[tuple[int, str]]:
    """Tilde prefixes bash would expand (subst.c: word start; after '=' and ':' in assignments)."""
    starts = [0] if mask[0] == "~" else []
    stop = "/"
    if assignment is not None:
        stop = "/:"
        eq = assignment.end() - 1
        if mask.startswith("~", eq + 1):
            starts.append(eq + 1)
        starts += [m.start() + 1 for m in re.finditer(":~", mask)]
    found = []
    for s in starts:
        end = s + 1
        while end < len(mask) and mask[end] not in stop:
            end += 1
        # A quoted character anywhere in the prefix stops the expansion.
        if "\0" not in mask[s:end]:
            found.append(
                (
                    s,
                    f"'{_excerpt(raw[s:end], 0)}' is tilde expansion (bash makes a home "
                    "directory of it): write the path out, or quote the '~'",
                )
            )
            break
    return found


def _glob(raw: str, mask: str) -> tuple[int, str] | None:
    """The first unquoted glob character, as pathexp.c's unquoted_glob_pattern_p sees them."""
    open_at = -1
    for m in _GLOB.finditer(mask):
        c = m.group()
        if c in "*?":
            return m.start(), f"'{c}' is a glob (bash expands it to file names): quote the word"
        if c == "[":
            if open_at < 0:
                open_at = m.start()
        elif c == "]":
            if open_at >= 0:
                return (
                    open_at,
                    f"'{_excerpt(raw[open_at : m.end()], 0)}' is a glob "
                    "(bash expands it to file names): quote the word",
                )
        else:  # '/' ends a bracket expression
            open_at = -1
    return None


def _brace_expansion(raw: str, mask: str) -> tuple[int, int] | None:
    """Indexes of the '{' and '}' where bash's brace_expand would change *raw*, or None.

    bash tries each unquoted '{' in turn and scans for its closing '}', which
    must be at the same nesting level and follow a ',' or '..' at that level;
    a '}' met at level 0 before any separator is skipped. That is quadratic
    for a word of many unmatched braces, so the same answer is computed from
    prefix sums: with B the running count of '{' minus '}', the level seen
    from an open brace p at event t is B(t) - min(B over [p, t]). The first
    separator c at level 0 after p is the first c > p with no smaller B in
    [p, c); its '}' is the next event where B drops below B(c).
    """
    pos: list[int] = []
    kind: list[str] = []
    for m in _BRACE_EVENT.finditer(mask):
        pos.append(m.start())
        kind.append(m.group())
    count = len(pos)
    level = [0] * count
    b = 0
    for k, c in enumerate(kind):
        b += 1 if c == "{" else -1 if c == "}" else 0
        level[k] = b
    # For each separator: the last earlier event with a smaller B, and the
    # first later one (a '}').
    prev_smaller = [-1] * count
    next_smaller = [-1] * count
    stack: list[int] = []
    for k in range(count):
        while stack and level[stack[-1]] >= level[k]:
            stack.pop()
        if kind[k] in ",.":
            prev_smaller[k] = stack[-1] if stack else -1
        stack.append(k)
    stack = []
    for k in range(count - 1, -1, -1):
        while stack and level[stack[-1]] >= level[k]:
            stack.pop()
        if kind[k] in ",.":
            next_smaller[k] = stack[-1] if stack else -1
        stack.append(k)
    # Separators become usable by candidates after their prev_smaller event.
    usable_from: list[list[int]] = [[] for _ in range(count + 1)]
    for k in range(count):
        if kind[k] in ",.":
            usable_from[prev_smaller[k] + 1].append(k)
    heap: list[int] = []
    added = 0
    start = 0  # where bash's current (sub)string begins
    n = len(raw)
    for k in range(count):
        while added <= k:
            for sep in usable_from[added]:
                heapq.heappush(heap, sep)
            added += 1
        p = pos[k]
        if kind[k] != "{" or p < start:
            continue
        # braces.c ignores a '{' that starts the text or follows a blank and
        # is followed by a blank, the end, or '}'.
        if (p == start or raw[p - 1] in " \t\n") and (p + 1 == n or raw[p + 1] in " \t\n}"):
            continue
        while heap and heap[0] <= k:
            heapq.heappop(heap)
        if not heap or next_smaller[heap[0]] < 0:
            continue
        close = pos[next_smaller[heap[0]]]
        amble = raw[p + 1 : close]
        if any(m.group() == "," for m in _COMMA_SCAN.finditer(amble)) or _valid_sequence(amble):
            return p, close
        # Not a sequence: bash keeps it and goes on with the rest of the word.
        if close + 1 >= n:
            return None
        start = close + 1
    return None


def _isdigit(c: str) -> bool:
    return len(c) == 1 and "0" <= c <= "9"


def _isalpha(c: str) -> bool:
    return len(c) == 1 and ("a" <= c <= "z" or "A" <= c <= "Z")


def _strtoimax(s: str) -> tuple[int | None, int]:
    """C strtoimax on *s*: (value, or None on overflow; index where the number ends)."""
    m = re.match(r"[ \t\n\v\f\r]*([+-]?)0*([0-9]+)", s)
    if m is None:
        return 0, 0
    if len(m.group(2)) > 19:  # beyond any intmax_t (and int()'s digit limit)
        return None, m.end()
    v = int(m.group(1) + m.group(2))
    return (v if _INTMIN <= v <= _INTMAX else None), m.end()


def _valid_sequence(amble: str) -> bool:
    """braces.c's expand_seqterm succeeds on *amble* ({x..y[..incr]})."""
    k = amble.find("..")
    if k < 0:
        return False
    lhs, rhs = amble[:k], amble[k + 2 :]
    if not lhs or not rhs:
        return False
    value, end = _strtoimax(lhs)
    if end > 0 and value is not None and lhs[end:].strip(" \t") == "":
        ltype, lv = "int", value
    elif len(lhs) == 1 and _isalpha(lhs):
        ltype, lv = "char", ord(lhs)
    else:
        return False
    if _isdigit(rhs[0]) or (rhs[0] in "+-" and _isdigit(rhs[1:2])):
        rv, ep = _strtoimax(rhs)
        if rv is None or (ep < len(rhs) and rhs[ep] != "."):
            return False
        rtype = "int"
    elif _isalpha(rhs[0]) and (len(rhs) == 1 or rhs[1] == "."):
        rtype, rv, ep = "char", ord(rhs[0]), 1
    else:
        return False
    incr: int | None = 1
    if rhs[ep : ep + 2] == ".." and len(rhs) > ep + 2:
        incr, used = _strtoimax(rhs[ep + 2 :])
        ep = ep + 2 + used if used else ep + 2
    if ep != len(rhs) or incr is None or ltype != rtype:
        return False
    return _sequence_fits(lv, rv, incr)


def _sequence_fits(start: int, end: int, incr: int) -> bool:
    """braces.c's mkseq does not give up on overflow or size."""
    if incr == 0:
        incr = 1
    if start > end and incr > 0:
        incr = -incr
    elif start < end and incr < 0:
        if incr == _INTMIN:
            return False
        incr = -incr
    diff = end - start
    if diff < _INTMIN + 3 or diff > _INTMAX - 2:
        return False
    span = abs(diff)
    step = abs(incr) if incr != _INTMIN else _INTMIN  # C's imaxabs overflows there
    per = int(span / step) if step < 0 else span // step
    return per + 1 <= _INTMAX and per <= _INT_MAX - 3


# --- messages ------------------------------------------------------------------------


def _bad_char_message(c: str) -> str:
    o = ord(c)
    if o == 0:
        return "a NUL byte: this is not a text file"
    if 0xDC80 <= o <= 0xDCFF:
        return f"invalid UTF-8 (byte 0x{o - 0xDC00:02x}): this is not a text file"
    if 0xD800 <= o <= 0xDFFF:
        return f"invalid character U+{o:04X}"
    if c == "\r":
        return "a carriage return (DOS line endings?): convert the file with dos2unix"
    return (
        f"control character {_escape_char(c)} in the script: write it out in the file, or remove it"
    )


def _dollar_message(text: str, at: int, in_dquotes: bool) -> str:
    """What a '$' or '`' at *at* would do in bash, and what to write instead."""
    if text[at] == "`":
        return "backquotes are command substitution: not supported (quote the '`' in single quotes)"
    nxt = text[at + 1 : at + 3]
    if nxt.startswith("(("):
        return "'$((' is arithmetic expansion: not supported; write the number"
    if nxt.startswith("("):
        return "'$(' is command substitution: not supported"
    if nxt.startswith("'") and not in_dquotes:
        return "$'...' is ANSI-C quoting: not supported; use '...' or \"...\""
    if nxt.startswith('"') and not in_dquotes:
        return "$\"...\" is a translated string: not supported; drop the '$'"
    m = _VARIABLE.match(text, at)
    if m is not None:
        name = m.group(1) if m.group(1) is not None else m.group(2)
        what = f"'{_excerpt(m.group(), 0)}' is a variable: scripts have no variables; "
        if "pid" in name.lower():
            return what + PID_HINT
        return what + "write the value itself (quote a literal '$' in single quotes)"
    return "'$' starts an expansion in bash: quote it in single quotes"


def _next_char(text: str, i: int) -> tuple[str, int]:
    """The character at *i* after any backslash-newline continuations, and its index."""
    while text.startswith("\\\n", i):
        i += 2
    return text[i : i + 1], i


def _redirect_op(text: str, pos: int) -> tuple[str, int]:
    """The redirection operator starting with the '>' at *pos*, and where it ends."""
    c, i = _next_char(text, pos + 1)
    op = ">"
    if c == ">":
        op = ">>"
        c, i = _next_char(text, i + 1)
    if c and c in "&|(":
        return op + c, i + 1
    return op, i


def _redirect_message(op: str) -> str:
    if op.endswith("("):
        return "'>(' is process substitution: not supported"
    if op.endswith("|"):
        return f"'{op}' is not supported: use '>'"
    return f"'{op}' duplicates a file descriptor: only '> FILE' and '>> FILE' are supported"


def _meta_message(text: str, pos: int) -> str:
    c = text[pos]
    nxt, i = _next_char(text, pos + 1)
    if c == "|":
        if nxt == "|":
            return "'||' is not supported: one command a line"
        return "pipes ('|') are not supported: one command a line"
    if c == "&":
        if nxt == "&":
            return "'&&' is not supported: one command a line"
        if nxt == ">":
            return "'&>' redirects standard error too: only '> FILE' and '>> FILE' are supported"
        return "'&' (a background job) is not supported: one command a line"
    if c == ";":
        return "';' is not supported: one command a line"
    if c == "(":
        if nxt == "(":
            return "'((' is arithmetic: not supported"
        return "'(' is not supported (a subshell, or a function definition): quote it"
    if c == ")":
        return "')' is not supported: quote it"
    # '<'
    if nxt == "<":
        if _next_char(text, i + 1)[0] == "<":
            return "here-strings ('<<<') are not supported"
        return "here-documents ('<<') are not supported"
    if nxt == "(":
        return "'<(' is process substitution: not supported"
    return "input redirection ('<') is not supported"
