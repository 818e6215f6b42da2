"""Module resolution: what ``insmod NAME`` loads.

A module name resolves, in order, to an in-memory definition (a tool's or
a test's), to ``NAME.toml`` in each ``--modules`` directory and then in
``test_modules/`` beside the script, and last to klpsim's models of the
kernel's selftest modules. Each directory is searched by file suffix
(:attr:`ModuleResolver.readers`): the ``.ko`` reader (artifacts/) plugs in
there, beside ``.toml``.
"""

from collections.abc import Callable
from pathlib import Path

from klpsim.kernel.module import ModuleSpec
from klpsim.livepatch.profiles import Profile
from klpsim.model.schema import DefinitionError, escape, load_definition, module_name_error
from klpsim.model.schema import parse_definition as parse_toml
from klpsim.modules.definition import build_module
from klpsim.modules.selftests import builtin_modules

__all__ = ["ModuleResolver", "ModuleNotFound", "module_name"]


class ModuleNotFound(Exception):
    """No module of that name, or a name no module can have; one line saying
    where the resolver looked."""


def module_name(path: str) -> str:
    """The module an insmod or modprobe argument names: the file's stem,
    with ``-`` read as ``_`` (as kmod and the kernel do)."""
    name = path.rsplit("/", 1)[-1]
    if name.endswith(".ko"):
        name = name[:-3]
    return name.replace("-", "_")


class ModuleResolver:
    """Finds and builds modules for one profile's kernel; caches by name."""

    def __init__(
        self,
        profile: Profile,
        module_dirs: list[Path] | tuple[Path, ...] = (),
        script_dir: Path | None = None,
        texts: dict[str, str] | None = None,
    ):
        self.profile = profile
        self.dirs = list(module_dirs)
        if script_dir is not None:
            self.dirs.append(script_dir / "test_modules")
        self.texts: dict[str, str] = dict(texts or {})
        """In-memory definitions: {name: TOML text}."""
        self.readers: dict[str, Callable[[Path], ModuleSpec]] = {
            ".toml": lambda path: build_module(load_definition(path), profile),
        }
        """How a file in a module directory becomes a module, by suffix."""
        self._builtin: dict[str, ModuleSpec] | None = None
        self._cache: dict[str, ModuleSpec] = {}

    def resolve(self, path: str) -> ModuleSpec:
        """The module for an insmod argument; ModuleNotFound or DefinitionError."""
        name = module_name(path)
        spec = self._cache.get(name)
        if spec is None:
            spec = self._cache[name] = self._find(name)
        return spec

    def _find(self, name: str) -> ModuleSpec:
        why = module_name_error(name)
        if why is not None:
            raise ModuleNotFound(why)
        if name in self.texts:
            defn = parse_toml(self.texts[name], Path(f"{name}.toml"))
            return build_module(defn, self.profile)
        for d in self.dirs:
            for suffix, read in self.readers.items():
                candidate = d / f"{name}{suffix}"
                try:
                    found = candidate.is_file()
                except OSError as e:  # e.g. a name too long for the file system
                    raise DefinitionError(f"{escape(str(candidate))}: {e.strerror}") from None
                if found:
                    return read(candidate)
        if self._builtin is None:
            self._builtin = builtin_modules(self.profile)
        spec = self._builtin.get(name)
        if spec is None:
            raise ModuleNotFound(f"unknown module '{name}' ({self.where(name)})")
        return spec

    def where(self, name: str) -> str:
        """Where *name* was looked for, in order."""
        files = " or ".join(f"{name}{suffix}" for suffix in self.readers)
        places = [str(d) + "/" for d in self.dirs]
        looked = f"looked for {files} in {', '.join(places)}, then" if places else "looked"
        return f"{looked} in klpsim's built-in modules"
