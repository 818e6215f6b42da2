"""Bash is the oracle for the script parser.

Random scripts are built from pieces whose plain reading is known (the
*model*: every word taken literally, one command a line, '>'/'>>' as given).
Each script is run by a real bash in which every command prints its words.

* The parser accepts a script: its commands equal the model, and bash
  prints exactly those words (and writes them to exactly those files).
* The parser refuses a script: bash must do something else than the model
  says (expand, split, redirect elsewhere, or fail), and the error names the
  line and column where the construct starts.

One bash process (C locale, extglob off as in any script) serves every
example: it sources each script in a subshell, in an empty directory, with
every builtin but printf and source disabled, so that any command name
reaches command_not_found_handle. That prints ``$#`` and the words,
NUL-terminated, and appends the same to a log (so output sent to a file that
a later command truncates is still seen). failglob makes a glob that matches
nothing an error instead of a literal word, so a glob the parser missed
shows up.
"""

import os
import random
import select
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from klpsim.scenario.parser import ScriptError, parse_script

BASH = shutil.which("bash")

_SERVER = r"""
command_not_found_handle() {
    printf '%s\0' "$#" "$@"
    printf '%s\0' "$#" "$@" >>"$ORACLE_LOG"
}
shopt -u extglob
shopt -s failglob
OFF=()
for b in $(compgen -b); do
    case $b in printf|source|.|enable) ;; *) OFF+=("$b") ;; esac
done
while IFS= read -r -d '' d; do
    ( ORACLE_LOG=$d/log && cd "$d/run" && enable -n "${OFF[@]}" enable && source ../script.sh ) \
        </dev/null >"$d/out" 2>"$d/err"
    printf '.'
done
"""

# First words bash would not hand to command_not_found_handle.
_NOT_A_COMMAND = {"printf", "source", ".", "command_not_found_handle"}


@dataclass
class Outcome:
    log: bytes  # every command run, in order, wherever its output went
    stdout: bytes
    stderr: bytes
    files: dict[str, bytes]


class Bash:
    """A bash that runs scripts one at a time, each in a fresh directory."""

    def __init__(self, root: Path):
        if BASH is None:
            raise RuntimeError("bash is not installed: the parser's oracle needs it")
        self.root = root
        (root / "bin").mkdir()
        (root / "home").mkdir()
        env = {
            "PATH": str(root / "bin"),
            "HOME": str(root / "home"),
            "LC_ALL": "C",
        }
        self.proc = subprocess.Popen(
            [BASH, "--norc", "--noprofile", "-c", _SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        self.count = 0

    def run(self, script: str) -> Outcome:
        self.count += 1
        d = self.root / f"ex{self.count}"
        (d / "run").mkdir(parents=True)
        (d / "script.sh").write_text(script)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(os.fsencode(d) + b"\0")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        if not ready:
            raise AssertionError(f"bash did not finish within 20 s: {script!r}")
        assert self.proc.stdout.read(1) == b".", "the bash oracle died"
        files = {p.name: p.read_bytes() for p in (d / "run").iterdir()}
        log = (d / "log").read_bytes() if (d / "log").exists() else b""
        outcome = Outcome(log, (d / "out").read_bytes(), (d / "err").read_bytes(), files)
        # A job the script put in the background (a refused '&') may still be
        # writing here; the directory is this example's alone.
        shutil.rmtree(d, ignore_errors=True)
        return outcome

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            # Its own session: this also ends a script that still runs.
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(scope="module")
def bash(tmp_path_factory):
    b = Bash(tmp_path_factory.mktemp("bash-oracle"))
    yield b
    b.close()


# --- the model ---------------------------------------------------------------------


@dataclass
class Piece:
    src: str
    val: str
    plain: bool = False  # unquoted characters


@dataclass
class Line:
    """A command line: words, at most one redirection, and the source around them."""

    words: list[list[Piece]]
    redirect: tuple[str, list[Piece]] | None = None
    redirect_at: int = 0  # index of the word the redirection precedes
    seps: list[str] = field(default_factory=list)  # between tokens
    lead: str = ""
    comment: str = ""


def value(word: list[Piece]) -> str:
    return "".join(p.val for p in word)


def record(words) -> bytes:
    return b"".join(x.encode() + b"\0" for x in [str(len(words)), *words])


def expected(commands) -> Outcome:
    """What bash prints for *commands* = [(words, redirect)], each run as given."""
    log = out = b""
    files: dict[str, bytes] = {}
    for words, redirect in commands:
        rec = record(words)
        log += rec
        if redirect is None:
            out += rec
        elif redirect[0] == ">":
            files[redirect[1]] = rec
        else:
            files[redirect[1]] = files.get(redirect[1], b"") + rec
    return Outcome(log, out, b"", files)


# --- strategies --------------------------------------------------------------------

# Unquoted characters: no '~' or '$' (the parser refuses those even where bash
# would leave them alone, as with '~nosuchuser' or 'a$'), no metacharacters.
PLAIN = "abQz019-_.,:=+@%^/{}!#é[]"
QUOTED = PLAIN + " \t\n~$`\\\"'*?;|&<>()"
RESERVED_LOOPS = {
    "if", "then", "else", "elif", "fi", "case", "esac", "for", "select",
    "while", "until", "do", "done", "in", "function", "time", "coproc",
}  # fmt: skip


class Tape:
    """Choices from a seeded generator: one hypothesis draw a script, which is
    much faster than many small strategies (the price: a failing script does
    not shrink; it is printed whole)."""

    def __init__(self, seed: int):
        self.rnd = random.Random(seed)

    def byte(self) -> int:
        return self.rnd.getrandbits(8)

    def int(self, lo: int, hi: int) -> int:
        return lo + self.byte() % (hi - lo + 1)

    def pick(self, seq):
        return seq[self.byte() % len(seq)]

    def chance(self, n: int) -> bool:
        """True one time in *n* (never for a zero byte)."""
        return self.byte() % n == n - 1

    def text(self, alphabet: str, lo: int, hi: int) -> str:
        return "".join(self.pick(alphabet) for _ in range(self.int(lo, hi)))


DQ_PLAIN = QUOTED.replace('"', "").replace("\\", "").replace("$", "").replace("`", "")
DQ_ESCAPES = [("\\a", "\\a"), ('\\"', '"'), ("\\\\", "\\"), ("\\$", "$"), ("\\`", "`"),
              ("\\'", "\\'"), ("\\\n", ""), ("\\ ", "\\ ")]  # fmt: skip
CONTINUATION = Piece("\\\n", "")


def piece(t: Tape) -> Piece:
    k = t.int(0, 199)
    if k < 80:
        s = t.text(PLAIN, 1, 4)
        return Piece(s, s, True)
    if k < 110:  # dense in what brace expansion looks at
        s = t.text("{}{}{},,..a1-", 2, 9)
        return Piece(s, s, True)
    if k < 135:
        s = t.text(QUOTED.replace("'", ""), 0, 4)
        return Piece(f"'{s}'", s)
    if k < 160:
        src, val = "", ""
        for _ in range(t.int(0, 3)):
            if t.chance(2):
                e, v = t.pick(DQ_ESCAPES)
                src, val = src + e, val + v
            else:
                x = t.text(DQ_PLAIN, 0, 3)
                src, val = src + x, val + x
        return Piece(f'"{src}"', val)
    if k < 185:
        c = t.pick(QUOTED.replace("\n", ""))
        return Piece("\\" + c, c)
    if k < 195:
        return CONTINUATION
    if k < 197:  # a '~' bash leaves alone: after another character
        s = "x~" + t.text(PLAIN, 0, 2)
        return Piece(s, s, True)
    if k < 199:  # ... or with a quoted character before the first '/'
        q = t.pick(["'a'", '"b"', "\\c", "''", '"/"'])
        val = {"''": "", '"/"': "/"}.get(q, q.strip("'\"\\"))
        return Piece("~" + q, "~" + val, True)
    # Rare: an unquoted '*' or '?' refuses the whole script.
    s = t.pick("*?")
    return Piece(s, s, True)


def word(t: Tape, ok=lambda v: True) -> list[Piece]:
    """A word whose value passes *ok* (drawn again until it does)."""
    while True:
        pieces = [piece(t) for _ in range(t.int(1, 4))]
        real = [p for p in pieces if p is not CONTINUATION]
        if not real:
            pieces.append(Piece("a", "a", True))
        elif real[0].plain and real[0].src.startswith("#"):
            # An unquoted '#' at the start of a word starts a comment.
            real[0].src = real[0].val = "a" + real[0].src
        v = value(pieces)
        # Loop keywords as command names could make bash loop; other keywords stay.
        if v not in RESERVED_LOOPS and ok(v):
            return pieces


def command_name(v: str) -> bool:
    """bash hands *v* to command_not_found_handle (a name with '/' is run as a
    path, '%...' resumes a job)."""
    return "/" not in v and not v.startswith("%") and v not in _NOT_A_COMMAND


def file_name(v: str) -> bool:
    return v not in ("", ".", "..") and "/" not in v


BLANKS = [" ", "  ", "\t", " \t", " \\\n", "\\\n "]


def line(t: Tape) -> Line:
    words = [word(t, command_name)] + [word(t) for _ in range(t.int(0, 3))]
    ln = Line(words)
    if t.chance(2):
        op = t.pick([">", ">>"]) + t.pick(["", " ", "\t", " \\\n"])
        ln.redirect = (op, word(t, file_name))
        ln.redirect_at = t.int(0, len(words))
    ln.seps = [t.pick(BLANKS) for _ in range(len(words))]
    ln.lead = t.pick(["", " ", "\t"])
    if t.chance(5):
        ln.comment = " #" + t.text(QUOTED.replace("\n", ""), 0, 5)
    return ln


def render(ln: Line, tight: bool) -> str:
    """*ln* as source; *tight*: no blank between a word and the redirection after it."""
    tokens = ["".join(p.src for p in w) for w in ln.words]
    if ln.redirect is not None:
        op, target = ln.redirect
        tokens.insert(ln.redirect_at, op + "".join(p.src for p in target))
    out = [ln.lead]
    for i, token in enumerate(tokens):
        out.append(token)
        if i < len(tokens) - 1:
            out.append("" if tight and i + 1 == ln.redirect_at else ln.seps[i])
    out.append(ln.comment)
    return "".join(out)


def model(ln: Line):
    words = tuple(value(w) for w in ln.words)
    red = None
    if ln.redirect is not None:
        red = (ln.redirect[0].strip(" \t\\\n"), value(ln.redirect[1]))
    return words, red


def build_script(seed: int):
    """A script of plain lines, blank lines and comment lines, and its model."""
    t = Tape(seed)
    texts, commands = [], []
    for _ in range(t.int(1, 4)):
        if t.chance(8):
            texts.append(t.pick(["", "   ", "\t", "# c 'x", "  #", "#\\"]))
            continue
        ln = line(t)
        texts.append(render(ln, t.chance(2)))
        commands.append(model(ln))
    return "\n".join(texts) + t.pick(["\n", "", "\n\n"]), commands


def script():
    return st.integers(0, 2**64).map(build_script)


def check(bash: Bash, text: str, commands) -> ScriptError | None:
    """The parser and bash agree on *text*, whose plain reading is *commands*."""
    outcome = bash.run(text)
    try:
        parsed = parse_script(text, "s.sh")
    except ScriptError as e:
        assert outcome != expected(commands), (
            f"refused, but bash reads it plainly: {e}\n{text!r}\n{outcome}"
        )
        return e
    got = [(c.words, c.redirect) for c in parsed]
    assert got == commands, f"{text!r}: parser {got} != model {commands}"
    assert outcome == expected(commands), f"{text!r}: bash {outcome} != parser {got}"
    return None


ORACLE = settings(
    max_examples=int(os.environ.get("ORACLE_EXAMPLES", "2000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@ORACLE
@given(script())
def test_plain_scripts_split_as_bash_splits_them(bash, example):
    text, commands = example
    check(bash, text, commands)


# --- forbidden constructs -------------------------------------------------------------

# (source, index in it of the character the error must point at, where it may go)
# where: "word" = a word of its own; "in" = also inside a word; "first" = the
# command name; "start" = a word of its own, not the command name.
FORBIDDEN = [
    ("{a,b}", 0, "in"),
    ("{1..3}", 0, "in"),
    ("{a..c}", 0, "in"),
    ("{,}", 0, "in"),
    ("{a,{b,c}}", 0, "in"),
    ("{5..1..2}", 0, "in"),
    ('{"a",b}', 0, "in"),
    ("{a\\,b,c}", 0, "in"),
    ("{a}b,c}", 0, "in"),
    ("{1..2}x{a}", 0, "in"),
    ("~", 0, "start"),
    ("~/x", 0, "start"),
    ("~root", 0, "start"),
    ("~+", 0, "start"),
    ("~-/y", 0, "start"),
    ("a=~", 2, "start"),
    ("b=~/x", 2, "start"),
    ("c=x:~", 4, "start"),
    ("d+=y:~/z:w", 5, "start"),
    ("$x", 0, "in"),
    ("${x}", 0, "in"),
    ("$(Qc)", 0, "in"),
    ("$((1+2))", 0, "in"),
    ("$'a'", 0, "in"),
    ('$"a"', 0, "in"),
    ("$1", 0, "in"),
    ("$$", 0, "in"),
    ("$?", 0, "in"),
    ("$#", 0, "in"),
    ("$@", 0, "in"),
    ("$-", 0, "in"),
    ("$0", 0, "in"),
    ('"$x"', 1, "in"),
    ('"a${x}b"', 2, "in"),
    ('"$(Qd)"', 1, "in"),
    ("`Qe`", 0, "in"),
    ('"`Qf`"', 1, "in"),
    ("*", 0, "in"),
    ("?", 0, "in"),
    ("[ab]", 0, "in"),
    ("[!a]", 0, "in"),
    ("[]", 0, "in"),
    (";", 0, "in"),
    ("&", 0, "in"),
    ("&&", 0, "in"),
    ("||", 0, "in"),
    ("|", 0, "in"),
    ("|&", 0, "in"),
    ("(", 0, "in"),
    (")", 0, "in"),
    ("<f", 0, "in"),
    ("<<E", 0, "in"),
    ("<<<a", 0, "in"),
    ("<(Qg)", 0, "in"),
    ("<>f", 0, "in"),
    ("<&0", 0, "in"),
    (">(Qh)", 0, "in"),
    ("2>f", 0, "start"),
    ("2>>f", 0, "start"),
    ("1>f", 0, "start"),
    ("0>f", 0, "start"),
    ("2>&1", 0, "start"),
    (">&2", 0, "in"),
    ("&>f", 0, "in"),
    ("&>>f", 0, "in"),
    ("{fd}>f", 0, "start"),
    ("!", 0, "first"),
    ("{", 0, "first"),
    ("}", 0, "first"),
    ("[[", 0, "first"),
    ("]]", 0, "first"),
    ("if", 0, "first"),
    ("then", 0, "first"),
    ("fi", 0, "first"),
    ("case", 0, "first"),
    ("for", 0, "first"),
    ("while", 0, "first"),
    ("do", 0, "first"),
    ("done", 0, "first"),
    ("in", 0, "first"),
    ("function", 0, "first"),
    ("time", 0, "first"),
    ("coproc", 0, "first"),
    ("select", 0, "first"),
    ("a=b", 0, "first"),
    ("A_1+=x", 0, "first"),
    ("v=", 0, "first"),
    ("x[1]=y", 0, "first"),
    ("'open", 0, "end"),
    ('"open', 0, "end"),
    (">", 0, "end"),
]

clean_word = st.text("abcxyz0123", min_size=1, max_size=4).map(lambda s: "Q" + s)


@st.composite
def forbidden_script(draw):
    """Clean lines, one of which holds one forbidden construct; and where it starts."""
    src, at, where = draw(st.sampled_from(FORBIDDEN))
    before = draw(st.lists(st.lists(clean_word, min_size=1, max_size=3), max_size=2))
    words = draw(st.lists(clean_word, min_size=1, max_size=3))
    after = draw(st.lists(st.lists(clean_word, min_size=1, max_size=3), max_size=2))
    if where == "first":
        index, joined = 0, False
    elif where == "end":
        index, joined = len(words), False
        after = []
    else:
        index = draw(st.integers(1, len(words)))
        joined = where == "in" and draw(st.booleans())
    # The line as source, with the offset of the forbidden piece.
    head = " ".join(words[:index])
    # Glued to the end of the word before, or a word of its own.
    prefix = head if joined or not head else head + " "
    line = prefix + src + ("" if index == len(words) else " " + " ".join(words[index:]))
    lines = [" ".join(ws) for ws in before] + [line] + [" ".join(ws) for ws in after]
    text = "\n".join(lines) + "\n"
    # The plain reading: the construct's characters taken literally, as a
    # word or glued to the word before.
    model_words = list(words)
    if joined:
        model_words[index - 1] += src
    else:
        model_words.insert(index, src)
    commands = (
        [(tuple(ws), None) for ws in before]
        + [(tuple(model_words), None)]
        + [(tuple(ws), None) for ws in after]
    )
    column = len(prefix) + at + 1
    if joined and index == 1 and src.startswith("["):
        column = 1  # 'Q0[ab]' as a command name: bash reads an array subscript
    return text, commands, len(before) + 1, column


@settings(ORACLE, max_examples=max(1, ORACLE.max_examples // 2))
@given(forbidden_script())
def test_forbidden_constructs_are_refused_where_bash_differs(bash, example):
    text, commands, line, column = example
    error = check(bash, text, commands)
    assert error is not None, f"accepted {text!r}"
    assert (error.line, error.column) == (line, column), f"{text!r}: {error}"
