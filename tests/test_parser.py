"""The script parser: what it accepts, what it refuses and where, and its cost.

Whether bash agrees is tested against bash itself in test_parser_bash.py;
this file pins the exact words, lines, columns and messages.
"""

import sys
import tracemalloc

import pytest

from harness import klpsim
from klpsim.scenario import parser
from klpsim.scenario.parser import Command, ScriptError, parse_script


def words(text: str) -> list[tuple[str, ...]]:
    return [c.words for c in parse_script(text)]


def refusal(text: str) -> ScriptError:
    with pytest.raises(ScriptError) as info:
        parse_script(text, "s.sh")
    return info.value


# --- accepted, with bash's meaning ---------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("echo a\\ b\n", ("echo", "a b")),
        ("echo 'it'\"s\"\n", ("echo", "its")),
        ("echo x#y\n", ("echo", "x#y")),
        ("echo x #y\n", ("echo", "x")),
        ("echo a=b c+=d x:~ e=b=~\n", ("echo", "a=b", "c+=d", "x:~", "e=b=~")),
        ("echo {} {a} a{b x{} {a..1} {1..a} {1..2..} {1..3000000000}\n",
         ("echo", "{}", "{a}", "a{b", "x{}", "{a..1}", "{1..a}", "{1..2..}", "{1..3000000000}")),
        ("echo {a\\,b} '{a,b}' \\{1..2}\n", ("echo", "{a,b}", "{a,b}", "{1..2}")),
        ('echo ~"x" ~\'/y\' a~b \\~ "~"\n', ("echo", "~x", "~/y", "a~b", "~", "~")),
        ("echo a=~'x' b=x:\\~\n", ("echo", "a=~x", "b=x:~")),
        ("echo [ a] ] [a/b] [\\]\n", ("echo", "[", "a]", "]", "[a/b]", "[]")),
        ("echo ! !a a!\n", ("echo", "!", "!a", "a!")),
        ("!a b\n", ("!a", "b")),
        ("echo if then { } [[\n", ("echo", "if", "then", "{", "}", "[[")),
        ("'if' x\n", ("if", "x")),
        ('"a=b" c\n', ("a=b", "c")),
        ("echo a\\\nb\n", ("echo", "ab")),
        ("echo 'a\\\nb'\n", ("echo", "a\\\nb")),
        ('echo "a\\\nb"\n', ("echo", "ab")),
        ('echo "a\\"b\\\\c\\$d\\`e\\x\\\'"\n', ("echo", "a\"b\\c$d`e\\x\\'")),
        ("echo 'a\\'\n", ("echo", "a\\")),
        ("echo a \\\n  b\n", ("echo", "a", "b")),
        ("echo a\\", ("echo", "a\\")),
        ("echo a \\", ("echo", "a", "\\")),
    ],
)  # fmt: skip
def test_words_split_as_bash_splits_them(text, expected):
    (cmd,) = parse_script(text)
    assert cmd.words == expected
    assert cmd.redirect is None


@pytest.mark.parametrize(
    "text, expected_words, redirect",
    [
        ('echo "2">f\n', ("echo", "2"), (">", "f")),
        ("echo 2\"\">f\n", ("echo", "2"), (">", "f")),
        ("echo \\2>f\n", ("echo", "2"), (">", "f")),
        ("echo 2 >f\n", ("echo", "2"), (">", "f")),
        ("echo a2>f\n", ("echo", "a2"), (">", "f")),
        ("echo 2147483648>f\n", ("echo", "2147483648"), (">", "f")),
        ("echo {1}>f\n", ("echo", "{1}"), (">", "f")),
        ("echo 2\\>f\n", ("echo", "2>f"), None),
        ("echo a >> 'my file'\n", ("echo", "a"), (">>", "my file")),
        ("echo a >\\\n> f\n", ("echo", "a"), (">>", "f")),
        ("echo > f a\n", ("echo", "a"), (">", "f")),
        ("> f echo a\n", ("echo", "a"), (">", "f")),
        # After a redirection, 'if' is no keyword and 'a=b' no assignment...
        (">f if\n", ("if",), (">", "f")),
        ("echo a>f#x\n", ("echo", "a"), (">", "f#x")),
    ],
)  # fmt: skip
def test_redirections(text, expected_words, redirect):
    (cmd,) = parse_script(text)
    assert (cmd.words, cmd.redirect) == (expected_words, redirect)


def test_lines_and_text_of_commands():
    text = (
        "# a comment\n"
        "\n"
        "  log one   # and a comment\n"
        'check_result "a\n'
        'b" \\\n'
        "  x\n"
        "echo a > /dev/kmsg\n"
        "last"
    )
    assert parse_script(text) == [
        Command(3, ("log", "one"), None, "log one   # and a comment"),
        Command(4, ("check_result", "a\nb", "x"), None, 'check_result "a\nb" \\\n  x'),
        Command(7, ("echo", "a"), (">", "/dev/kmsg"), "echo a > /dev/kmsg"),
        Command(8, ("last",), None, "last"),
    ]


def test_a_continuation_does_not_end_a_comment():
    assert words("echo a # c \\\necho b\n") == [("echo", "a"), ("echo", "b")]


# --- refused, with the line and column ---------------------------------------------------


@pytest.mark.parametrize(
    "text, line, column, message",
    [
        # brace expansion
        ("echo {a,b}\n", 1, 6, "'{a,b}' is brace expansion"),
        ("echo x{1..3}y\n", 1, 7, "'{1..3}' is brace expansion"),
        ("echo {a..c}\n", 1, 6, "brace expansion"),
        ("echo {a}b,c}\n", 1, 6, "'{a}b,c}' is brace expansion"),
        ("echo {1..2}{a}\n", 1, 6, "brace expansion"),
        ("echo {1..a}{b,c}\n", 1, 12, "'{b,c}' is brace expansion"),
        ("{a,b}\n", 1, 1, "brace expansion"),
        ("echo a > {x,y}\n", 1, 10, "brace expansion"),
        # tilde expansion
        ("echo ~\n", 1, 6, "'~' is tilde expansion"),
        ("echo ~/x\n", 1, 6, "'~' is tilde expansion"),
        ("echo ~root/x\n", 1, 6, "'~root' is tilde expansion"),
        ("echo ~nosuchuser\n", 1, 6, "'~nosuchuser' is tilde expansion"),
        ("echo a=~/x\n", 1, 8, "tilde expansion"),
        ("echo PATH=/a:~/b\n", 1, 14, "tilde expansion"),
        ("echo a > ~/f\n", 1, 10, "tilde expansion"),
        ("~ x\n", 1, 1, "tilde expansion"),
        # $ in any form, backquotes
        ("echo $HOME\n", 1, 6, "'$HOME' is a variable"),
        ("echo a${x}b\n", 1, 7, "'${x}' is a variable"),
        ("sleep_task $PID f\n", 1, 12, "pids are deterministic"),
        ("echo $(ls)\n", 1, 6, "'$(' is command substitution"),
        ("echo $((1+2))\n", 1, 6, "'$((' is arithmetic expansion"),
        ("echo $'a\\n'\n", 1, 6, "ANSI-C quoting"),
        ('echo $"a"\n', 1, 6, "translated string"),
        ("echo $1 $@\n", 1, 6, "'$1' is a variable"),
        ("echo a$\n", 1, 7, "'$' starts an expansion"),
        ('echo "a $x"\n', 1, 9, "'$x' is a variable"),
        ('echo "$(ls "a")"\n', 1, 7, "command substitution"),
        ("echo `ls`\n", 1, 6, "backquotes"),
        ('echo "`ls`"\n', 1, 7, "backquotes"),
        # globs
        ("ls /sys/*\n", 1, 9, "'*' is a glob"),
        ("echo a?\n", 1, 7, "'?' is a glob"),
        ("echo x[ab]y\n", 1, 7, "'[ab]' is a glob"),
        ("echo a[]\n", 1, 7, "'[]' is a glob"),
        ("echo [[]\n", 1, 6, "is a glob"),
        # process substitution, pipes, lists, subshells
        ("cat <(ls)\n", 1, 5, "'<(' is process substitution"),
        ("echo >(cat)\n", 1, 6, "'>(' is process substitution"),
        ("cat a | grep x\n", 1, 7, "pipes ('|')"),
        ("cat a |& grep x\n", 1, 7, "pipes ('|')"),
        ("log a; log b\n", 1, 6, "';' is not supported"),
        ("sleep 1 &\n", 1, 9, "background job"),
        ("true && log a\n", 1, 6, "'&&'"),
        ("false || log a\n", 1, 7, "'||'"),
        ("(log a)\n", 1, 1, "'(' is not supported"),
        ("((1))\n", 1, 1, "'((' is arithmetic"),
        ("log a)\n", 1, 6, "')' is not supported"),
        ("f() x\n", 1, 2, "'(' is not supported"),
        # other redirections
        ("cat <f\n", 1, 5, "input redirection"),
        ("cat <<EOF\n", 1, 5, "here-documents"),
        ("cat <<<x\n", 1, 5, "here-strings"),
        ("echo a 2>f\n", 1, 8, "'2>' redirects file descriptor 2"),
        ("echo a 2>>f\n", 1, 8, "'2>>' redirects file descriptor 2"),
        ("echo a 1>f\n", 1, 8, "file descriptor 1"),
        ("echo a 2\\\n>f\n", 1, 8, "'2>' redirects file descriptor 2"),
        ("echo a 2>&1\n", 1, 8, "'2>&' redirects file descriptor 2"),
        ("echo a >&2\n", 1, 8, "'>&' duplicates a file descriptor"),
        ("echo a &>f\n", 1, 8, "'&>' redirects standard error"),
        ("echo a >|f\n", 1, 8, "'>|' is not supported"),
        ("echo a {fd}>f\n", 1, 8, "named file descriptor"),
        ("echo a >\n", 1, 8, "'>' needs a file name"),
        ("echo a >> # c\n", 1, 8, "'>>' needs a file name"),
        ("echo a > > f\n", 1, 8, "'>' needs a file name"),
        ("echo a >f >g\n", 1, 11, "only one redirection"),
        ("> f\n", 1, 1, "a redirection needs a command"),
        ("echo a > ''\n", 1, 10, "an empty file name"),
        # words bash reads as keywords or assignments
        ("! log a\n", 1, 1, "'!' is a bash keyword"),
        ("if true\n", 1, 1, "'if' is a bash keyword"),
        ("  then x\n", 1, 3, "'then' is a bash keyword"),
        ("for a in b\n", 1, 1, "'for' is a bash keyword"),
        ("while x\n", 1, 1, "'while'"),
        ("case a\n", 1, 1, "'case'"),
        ("[[ -e f ]]\n", 1, 1, "'[[' is a bash keyword"),
        ("function f\n", 1, 1, "'function'"),
        ("time sleep 1\n", 1, 1, "'time'"),
        ("{ log a\n", 1, 1, "'{' is a bash keyword"),
        ("}\n", 1, 1, "'}' is a bash keyword"),
        ("i\\\nf x\n", 1, 1, "'if' is a bash keyword"),
        ("VAR=x log a\n", 1, 1, "assigns the shell variable VAR"),
        ("VAR=x\n", 1, 1, "assigns the shell variable VAR"),
        ("a+=x b\n", 1, 1, "assigns the shell variable a"),
        (">f a=b x\n", 1, 4, "assigns the shell variable a"),
        ("x[1]=y\n", 1, 1, "assigns the shell variable x"),
        ("a[ b] c\n", 1, 1, "array subscript"),
        # quotes that never end
        ("log a\necho 'x\n\n", 2, 6, "unterminated single quote"),
        ('log a\nlog "x\ny\n', 2, 5, "unterminated double quote"),
        # positions: lines, continuations, tabs and wide characters
        ("log a\n\n  echo b $x\n", 3, 10, "'$x'"),
        ("echo a \\\n $x\n", 2, 2, "'$x'"),
        ("echo 'a\nb' \"c\nd\" *\n", 3, 4, "'*' is a glob"),
        ("echo\té $x\n", 1, 8, "'$x'"),
        ("echo 日本 $x\n", 1, 9, "'$x'"),
        # the first offence in a word wins
        ("echo {a,b}$x\n", 1, 6, "brace expansion"),
        ("echo $x{a,b}\n", 1, 6, "'$x'"),
        ("echo ~*\n", 1, 6, "tilde expansion"),
        ("echo *'$x\n", 1, 6, "'*' is a glob"),
    ],
)
def test_refusals_name_line_and_column(text, line, column, message):
    e = refusal(text)
    assert (e.path, e.line, e.column) == ("s.sh", line, column), str(e)
    assert message in e.message
    assert str(e) == f"s.sh:{line}:{column}: {e.message}"


def test_messages_say_what_to_write_instead():
    assert "quote the word" in refusal("ls *\n").message
    assert "write the words out, or quote the braces" in refusal("echo {a,b}\n").message
    assert "write the path out, or quote the '~'" in refusal("echo ~/x\n").message
    assert "one command a line" in refusal("a; b\n").message


# --- bad text, one line ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, line, column, shown",
    [
        ("log a\nlog b\x1b[1m\n", 2, 6, "control character \\x1b"),
        ("log a\r\n", 1, 6, "a carriage return (DOS line endings?)"),
        ("log 'a\x00'\n", 1, 7, "a NUL byte: this is not a text file"),
        ("# \x7f\n", 1, 3, "control character \\x7f"),
        ("log a\udcff\n", 1, 6, "invalid UTF-8 (byte 0xff)"),
        ("log \ud800\n", 1, 5, "invalid character U+D800"),
    ],
)
def test_bad_characters_are_refused_on_one_printable_line(text, line, column, shown):
    e = refusal(text)
    assert (e.line, e.column) == (line, column)
    assert shown in str(e)
    assert str(e).isprintable()


def test_script_error_str_escapes_what_came_from_the_input():
    e = ScriptError("dir/a\nb.sh", 3, "unknown command 'x\ny\x1b'", 7)
    assert str(e) == "dir/a\\nb.sh:3:7: unknown command 'x\\ny\\x1b'"
    assert (e.path, e.line, e.column, e.message) == (
        "dir/a\nb.sh",
        3,
        7,
        "unknown command 'x\ny\x1b'",
    )
    # Errors found while running have a line but no column.
    assert str(ScriptError("s.sh", 2, "unknown module 'm'")) == "s.sh:2: unknown module 'm'"


def test_a_pid_in_a_variable_gets_the_verbs_pid_hint(tmp_path):
    # One wording for "pids are numbers": the tokenizer's, for $PID, and the
    # pid argument check's, for a word (test_bad_input.py pins that one).
    hint = (
        "pids are deterministic (spawn_task prints each new one, counting from 1001), "
        "so write the number"
    )
    e = refusal("spawn_task t\nsleep_task $PID f\n")
    assert (e.line, e.column) == (2, 12)
    assert e.message == f"'$PID' is a variable: scripts have no variables; {hint}"
    path = tmp_path / "s.sh"
    path.write_text("spawn_task t\nsleep_task PID f\n")
    assert klpsim("run", str(path)).err == (
        f"klpsim: {path}:2: sleep_task: PID: 'PID' is not a pid: {hint}\n"
    )


def test_long_constructs_are_shortened_in_messages():
    e = refusal("echo {" + "a," * 100 + "b}\n")
    assert len(e.message) < 200


def test_cli_names_an_undecodable_byte(tmp_path):
    path = tmp_path / "s.sh"
    path.write_bytes(b"log a\nlog \xff\xfe\n")
    r = klpsim("run", str(path))
    assert r.status == 2
    assert r.err == f"klpsim: {path}:2:5: invalid UTF-8 (byte 0xff): this is not a text file\n"


def test_cli_names_a_nul_byte(tmp_path):
    path = tmp_path / "s.sh"
    path.write_bytes(b"log a\x00\n")
    r = klpsim("run", str(path))
    assert (r.status, r.err) == (2, f"klpsim: {path}:1:6: a NUL byte: this is not a text file\n")


# --- linear time -------------------------------------------------------------------------


def cost(text: str) -> tuple[int, int]:
    """(lines of parser.py executed, bytes allocated) to parse *text*: counts, not times.

    The bytes are summed line by line: the peak of traced memory while a line
    runs, above what was live when it began. Copying a growing word at every
    character (the old splitter: 26 s for one 80,000-character word) makes
    that sum quadratic even though the number of lines stays linear.
    """
    lines = allocated = live = 0
    source = parser.__file__

    def local(frame, event, arg):
        nonlocal lines, allocated, live
        if event == "line":
            lines += 1
            current, peak = tracemalloc.get_traced_memory()
            allocated += max(0, peak - live)
            live = current
            tracemalloc.reset_peak()
        return local

    def calls(frame, event, arg):
        return local if frame.f_code.co_filename == source else None

    old = sys.gettrace()
    tracemalloc.start()
    live = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    sys.settrace(calls)
    try:
        parse_script(text)
    except ScriptError:
        pass
    finally:
        sys.settrace(old)
        tracemalloc.stop()
    return lines, allocated


SHAPES = {
    "plain lines": lambda n: "load_lp test_klp_livepatch replace=1\n" * n,
    "escapes": lambda n: "echo " + "a\\ " * n + "\n",
    "single quotes": lambda n: "echo " + "'x'" * n + "\n",
    "double quotes": lambda n: 'echo "' + 'a\\"\\\n' * n + '"\n',
    "continuations": lambda n: "echo " + "a\\\n" * n + "\n",
    "quoted words": lambda n: "echo 'a' \"b\" c\\ d > f\n" * n,
    "open braces": lambda n: "echo " + "x{" * n + "}\n",
    "empty braces": lambda n: "echo " + "x{}" * n + "\n",
    "nested braces": lambda n: "echo " + "{" * n + "a}" * n + "\n",
    "bad sequences": lambda n: "echo " + "{a..1}" * n + "\n",
    "brackets": lambda n: "echo " + "[a/" * n + "\n",
    "tildes": lambda n: "echo a=" + ":~'x'" * n + "\n",
    "comments": lambda n: "# x\n" * n,
}


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_parsing_is_linear(shape):
    """Four times the input costs at most about four times as much.

    A quadratic step shows a factor near 16: the old splitter's copying in the
    bytes, a rescan per brace, per word or per line in the lines.
    """
    make = SHAPES[shape]
    (lines1, bytes1), (lines4, bytes4) = cost(make(200)), cost(make(800))
    assert lines4 <= 4.4 * lines1 + 50, (lines1, lines4)
    assert bytes4 <= 4.4 * bytes1 + 10_000, (bytes1, bytes4)


def test_an_80k_character_word_parses():
    word = "a\\ b'c'\"d\"{x}yzw" * 5000
    assert len(word) == 80_000
    (cmd,) = parse_script(f"echo {word}\n")
    assert cmd.words == ("echo", "a bcd{x}yzw" * 5000)
