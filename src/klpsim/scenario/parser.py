"""Parse a scenario script into commands, splitting words as bash does.

Supported: single quotes, double quotes (taken literally, no expansion),
backslash escapes, quoted words across lines, ``#`` comments, and a
trailing ``> PATH`` or ``>> PATH``. Anything that would make bash expand or
combine commands (variables, pipes, globs, ``;``, ``&``, subshells) is a
parse error naming the line, so that a script means the same here and on a
real machine.
"""

from dataclasses import dataclass

__all__ = ["Command", "ScriptError", "parse_script"]

# Characters that bash would treat specially outside quotes.
_FORBIDDEN = {
    "|": "pipes are not supported",
    ";": "';' is not supported: one command a line",
    "&": "background jobs and '&&' are not supported",
    "<": "input redirection is not supported",
    "$": "variables and command substitution are not supported",
    "`": "command substitution is not supported",
    "(": "subshells are not supported",
    ")": "subshells are not supported",
    "*": "globs are not supported (quote the word)",
    "?": "globs are not supported (quote the word)",
    "[": "globs and tests are not supported (quote the word)",
}


class ScriptError(Exception):
    """A script that cannot be read or run: names the file and line."""

    def __init__(self, path: str, line: int, message: str):
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message


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


def parse_script(text: str, path: str = "<script>") -> list[Command]:
    """Split *text* into commands; raise ScriptError on what bash would do differently."""
    commands: list[Command] = []
    i, n, line = 0, len(text), 1
    words: list[str] = []
    word: list[str] | None = None
    start_line = 1
    start_pos = 0
    redirect_op: str | None = None

    def end_word() -> None:
        nonlocal word
        if word is not None:
            words.append("".join(word))
            word = None

    def end_command(end: int) -> None:
        nonlocal words, redirect_op
        end_word()
        if redirect_op is not None and not redirect_op.startswith("done:"):
            raise ScriptError(path, start_line, f"'{redirect_op}' needs a file name")
        if words:
            redirect = None
            cmd_words = words
            if redirect_op is not None:
                op = redirect_op[len("done:") :]
                target = words[redirect_idx]
                cmd_words = words[:redirect_idx] + words[redirect_idx + 1 :]
                redirect = (op, target)
                if not cmd_words:
                    raise ScriptError(path, start_line, "a redirection needs a command")
            commands.append(
                Command(start_line, tuple(cmd_words), redirect, text[start_pos:end].strip())
            )
        words = []
        redirect_op = None

    redirect_idx = -1
    while i < n:
        c = text[i]
        if c == "\n":
            end_command(i)
            line += 1
            i += 1
            start_line = line
            start_pos = i
            continue
        if not words and word is None and c in " \t":
            i += 1
            start_pos = i
            continue
        if c in " \t":
            end_word()
            i += 1
            continue
        if c == "#" and word is None:
            while i < n and text[i] != "\n":
                i += 1
            continue
        if c == "\\":
            if i + 1 < n and text[i + 1] == "\n":
                line += 1
                i += 2
                continue
            if i + 1 >= n:
                raise ScriptError(path, line, "a backslash at the end of the script")
            word = (word or []) + [text[i + 1]]
            i += 2
            continue
        if c == "'":
            qline = line
            j = text.find("'", i + 1)
            if j < 0:
                raise ScriptError(path, qline, "unterminated single quote")
            quoted = text[i + 1 : j]
            line += quoted.count("\n")
            word = (word or []) + [quoted]
            i = j + 1
            continue
        if c == '"':
            qline = line
            j = i + 1
            chunk: list[str] = []
            while j < n and text[j] != '"':
                ch = text[j]
                if ch == "\\" and j + 1 < n and text[j + 1] in '"\\$`\n':
                    if text[j + 1] == "\n":
                        line += 1
                    else:
                        chunk.append(text[j + 1])
                    j += 2
                    continue
                if ch in "$`":
                    raise ScriptError(
                        path,
                        line,
                        "variables and command substitution are not supported (use single quotes)",
                    )
                if ch == "\n":
                    line += 1
                chunk.append(ch)
                j += 1
            if j >= n:
                raise ScriptError(path, qline, "unterminated double quote")
            word = (word or []) + chunk
            i = j + 1
            continue
        if c == ">":
            if word is not None and "".join(word) in ("1", "2"):
                raise ScriptError(
                    path, line, "only '> PATH' and '>> PATH' redirections are supported"
                )
            end_word()
            if redirect_op is not None:
                raise ScriptError(path, line, "only one redirection per command")
            op = ">>" if text.startswith(">>", i) else ">"
            i += len(op)
            if i < n and text[i] in "&|(":
                raise ScriptError(path, line, f"'{op}{text[i]}' is not supported")
            redirect_op = op
            redirect_idx = len(words)
            # The next word is the target.
            while i < n and text[i] in " \t":
                i += 1
            if i >= n or text[i] == "\n":
                raise ScriptError(path, line, f"'{op}' needs a file name")
            redirect_op = "done:" + op
            continue
        if c in _FORBIDDEN:
            raise ScriptError(path, line, _FORBIDDEN[c])
        word = (word or []) + [c]
        i += 1
    end_command(n)
    for cmd in commands:
        if cmd.redirect is not None and len(cmd.words) and cmd.redirect[1] == "":
            raise ScriptError(path, cmd.line, "empty redirection target")
    return commands
