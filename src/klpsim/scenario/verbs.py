"""The verb table: every command a scenario may use, and what it takes.

Each family of verbs (functions.sh's helpers, shell commands, simulator
verbs, BPF verbs) registers its verbs here when it is imported, with the
arguments each one declares. The runner looks verbs up by name and checks
every command's arguments against its declaration before the script's
first line runs; it knows no verb by name.

A *command* (``command=True``) is a plain shell command: it returns
``(status, stdout, stderr)``, its output may be redirected, and
``loop_until`` may run it. Any other verb writes its own output and cannot
be redirected.

A file may declare what cannot be written to it (:meth:`Registry.target`):
when a command's output is known from its words alone (``echo``, which
declares ``prints``), a redirection into that file is checked with the
rest of the script, before its first line runs.
"""

import importlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

__all__ = [
    "Arg",
    "ArgError",
    "Opt",
    "Verb",
    "Registry",
    "REGISTRY",
    "FAMILIES",
    "default_registry",
    "Result",
    "checked_by",
]

Result = tuple[int, str, str]
"""What a shell command gives back: exit status, stdout, stderr."""

Check = Callable[[str], str | None]
"""Why a word does not fit an argument (None: it fits)."""


def checked_by(parse: Callable[[str], object]) -> Check:
    """A check from a parser: the parser's ValueError is why a word is bad."""

    def check(word: str) -> str | None:
        try:
            parse(word)
        except ValueError as e:
            return str(e)
        return None

    return check


class ArgError(Exception):
    """A command's words do not fit the verb: one line, without the place."""


class Arg(NamedTuple):
    """A positional argument."""

    name: str
    """As the usage line shows it: ``MOD``, ``PID``, ``FUNC``..."""
    check: Check | None = None
    optional: bool = False
    repeat: bool = False
    """Takes every remaining word (zero or more unless not *optional*)."""
    module: bool = False
    """A module to load: resolved and parsed before the script runs."""


class Opt(NamedTuple):
    """An option: a bare flag, or a flag and its value."""

    flag: str
    value: Arg | None = None


class Bound:
    """A command's words sorted into arguments and options."""

    def __init__(self) -> None:
        self.args: dict[str, list[str]] = {}
        """Positional words, by argument name."""
        self.opts: dict[str, str | None] = {}
        """Options given: flag -> value (None for a bare flag)."""


class Verb(NamedTuple):
    """One verb: its implementation and what it takes."""

    name: str
    family: str
    run: Callable[..., Any]
    """``run(runner, *words)``."""
    args: tuple[Arg, ...] = ()
    opts: tuple[Opt, ...] = ()
    command: bool = False
    check: Callable[[Bound], str | None] | None = None
    """Checks that need several words at once."""
    runs_command: bool = False
    """Its words are a command to run (``loop_until``): checked as one."""
    prints: Callable[[Sequence[str]], str] | None = None
    """What the command prints, known from its words alone (``echo``)."""

    def usage(self) -> str:
        parts = [self.name]
        for a in self.args:
            text = a.name + ("..." if a.repeat else "")
            parts.append(f"[{text}]" if a.optional else text)
        for o in self.opts:
            parts.append(f"[{o.flag}{' ' + o.value.name if o.value else ''}]")
        return "usage: " + " ".join(parts)

    def bind(self, words: Sequence[str]) -> Bound:
        """Sort *words* into arguments and options; ArgError if they do not fit."""
        flags = {o.flag: o for o in self.opts}
        positional: list[str] = []
        bound = Bound()
        i = 0
        while i < len(words):
            w = words[i]
            opt = flags.get(w)
            if opt is not None:
                if opt.value is None:
                    bound.opts[w] = None
                    i += 1
                    continue
                if i + 1 >= len(words):
                    raise ArgError(f"{self.name}: {w} needs {opt.value.name}")
                _check(self.name, w, opt.value, words[i + 1])
                bound.opts[w] = words[i + 1]
                i += 2
                continue
            if self.opts and w.startswith("--"):
                known = ", ".join(
                    o.flag + (f" {o.value.name}" if o.value else "") for o in self.opts
                )
                raise ArgError(f"{self.name}: bad option '{w}' ({known})")
            positional.append(w)
            i += 1
        required = [a for a in self.args if not a.optional]
        repeat = any(a.repeat for a in self.args)
        if len(positional) < len(required) or (not repeat and len(positional) > len(self.args)):
            raise ArgError(self.usage())
        rest = list(positional)
        for k, a in enumerate(self.args):
            if a.repeat:
                tail = len(self.args) - k - 1
                take, rest = rest[: len(rest) - tail], rest[len(rest) - tail :]
            else:
                if not rest:
                    break
                take, rest = rest[:1], rest[1:]
            for w in take:
                _check(self.name, a.name, a, w)
            bound.args[a.name] = take
        if self.check is not None:
            why = self.check(bound)
            if why is not None:
                raise ArgError(why)
        return bound

    def modules(self, bound: Bound) -> list[str]:
        """The modules this command loads."""
        return [w for a in self.args if a.module for w in bound.args.get(a.name, [])]


def _check(verb: str, label: str, arg: Arg, word: str) -> None:
    if arg.check is not None:
        why = arg.check(word)
        if why is not None:
            raise ArgError(f"{verb}: {label}: {why}")


class Registry:
    """The verbs a runner knows, by name."""

    def __init__(self) -> None:
        self.verbs: dict[str, Verb] = {}
        self.targets: dict[str, Check] = {}
        """Files a redirection writes, with why a text cannot be written to each."""

    def add(self, verb: Verb) -> Verb:
        if verb.name in self.verbs:
            raise ValueError(f"verb '{verb.name}' registered twice")
        self.verbs[verb.name] = verb
        return verb

    def get(self, name: str) -> Verb | None:
        return self.verbs.get(name)

    def target(self, path: str, check: Check) -> None:
        """Declare why a text cannot be written to *path* (None: it can)."""
        if path in self.targets:
            raise ValueError(f"redirection target '{path}' registered twice")
        self.targets[path] = check

    def check_redirect(self, verb: Verb, words: Sequence[str], path: str) -> None:
        """ArgError if *verb* run with *words* surely writes what *path* refuses."""
        check = self.targets.get(path)
        if check is None or verb.prints is None:
            return
        why = check(verb.prints(words))
        if why is not None:
            raise ArgError(why)

    def verb(
        self,
        name: str,
        family: str,
        *args: Arg,
        opts: tuple[Opt, ...] = (),
        command: bool = False,
        check: Callable[[Bound], str | None] | None = None,
        runs_command: bool = False,
        prints: Callable[[Sequence[str]], str] | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """A decorator: register the function as verb *name*."""

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.add(Verb(name, family, fn, args, opts, command, check, runs_command, prints))
            return fn

        return register


REGISTRY = Registry()
"""The verbs of the families below, registered as each is imported."""

FAMILIES = (
    "klpsim.scenario.helpers",
    "klpsim.scenario.shell",
    "klpsim.scenario.simverbs",
    "klpsim.scenario.bpfverbs",
    "klpsim.scenario.statusverbs",
)


def default_registry() -> Registry:
    """Every verb family's verbs."""
    for family in FAMILIES:
        importlib.import_module(family)
    return REGISTRY
