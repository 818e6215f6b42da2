"""Module resolution: what ``insmod NAME`` loads.

A module name resolves, in order, to a module a tool added
(:meth:`ModuleResolver.add`), to an in-memory definition (a tool's or a
test's), to ``NAME.toml`` or ``NAME.ko`` in each ``--modules`` directory and
then in ``test_modules/`` beside the script, and last to klpsim's models of
the kernel's selftest modules. Each directory is searched by file suffix
(:attr:`ModuleResolver.readers`). A ``.ko`` file is found by the module
name its file name gives (``livepatch-sample.ko`` is ``livepatch_sample``,
as kmod reads it) and read by modules/kofile.py.
"""

from collections.abc import Callable
from pathlib import Path

from klpsim.kernel.module import ModuleSpec, module_name_error
from klpsim.kernel.printk import escape
from klpsim.livepatch.profiles import Profile
from klpsim.modules.selftests import builtin_modules

__all__ = ["ModuleResolver", "ModuleError", "module_name", "module_file"]


class ModuleError(Exception):
    """A module that cannot be loaded: no module of that name, a name no
    module can have (saying where the resolver looked), or a definition that
    does not fit the schema. One line."""


def _build(text: str | None, path: Path, profile: Profile) -> ModuleSpec:
    """The module the definition at *path* (or its *text*) defines."""
    # The schema and the builder only when a definition is read: start-up
    # stays light for scripts that use the built-in modules.
    from klpsim.model.schema import DefinitionError, load_definition, parse_definition
    from klpsim.modules.definition import build_module

    try:
        defn = load_definition(path) if text is None else parse_definition(text, path)
    except DefinitionError as e:
        raise ModuleError(str(e)) from None
    return build_module(defn, profile)


def _read_ko(path: Path, profile: Profile) -> ModuleSpec:
    from klpsim.modules.kofile import KoModuleError, ko_module

    try:
        return ko_module(path, profile)
    except KoModuleError as e:
        raise ModuleError(str(e)) from None


def module_file(d: Path, name: str, suffix: str) -> Path | None:
    """The file in directory *d* that holds module *name* with *suffix*:
    ``NAME{suffix}`` or, for ``-`` in file names, any file whose
    :func:`module_name` is *name*."""
    candidate = d / f"{name}{suffix}"
    try:
        if candidate.is_file():
            return candidate
        if suffix == ".ko" and d.is_dir():
            for p in sorted(d.glob("*-*.ko")):
                if module_name(p.name) == name and p.is_file():
                    return p
    except OSError as e:  # e.g. a name too long for the file system
        raise ModuleError(f"{escape(str(candidate))}: {e.strerror}") from None
    return None


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
            ".toml": lambda path: _build(None, path, profile),
            ".ko": lambda path: _read_ko(path, profile),
        }
        """How a file in a module directory becomes a module, by suffix; a
        reader raises ModuleError for a file that holds no usable module."""
        self._builtin: dict[str, ModuleSpec] | None = None
        self._cache: dict[str, ModuleSpec] = {}

    def add(self, spec: ModuleSpec) -> None:
        """Make *spec* the module its name resolves to (a tool's own module)."""
        self._cache[spec.name] = spec

    def resolve(self, path: str) -> ModuleSpec:
        """The module for an insmod argument; ModuleError if there is none."""
        name = module_name(path)
        spec = self._cache.get(name)
        if spec is None:
            spec = self._cache[name] = self._find(name)
        return spec

    def _find(self, name: str) -> ModuleSpec:
        why = module_name_error(name)
        if why is not None:
            raise ModuleError(why)
        if name in self.texts:
            return _build(self.texts[name], Path(f"{name}.toml"), self.profile)
        for d in self.dirs:
            for suffix, read in self.readers.items():
                found = module_file(d, name, suffix)
                if found is not None:
                    return read(found)
        if self._builtin is None:
            self._builtin = builtin_modules(self.profile)
        spec = self._builtin.get(name)
        if spec is None:
            raise ModuleError(f"unknown module '{name}' ({self.where(name)})")
        return spec

    def provide(self, name: str, spec: ModuleSpec) -> None:
        """Resolve *name* to *spec*, a module built elsewhere from the same
        definition (the explorer builds each of its modules once)."""
        self._cache[name] = spec

    def where(self, name: str) -> str:
        """Where *name* was looked for, in order."""
        files = " or ".join(f"{name}{suffix}" for suffix in self.readers)
        places = [str(d) + "/" for d in self.dirs]
        looked = f"looked for {files} in {', '.join(places)}, then" if places else "looked"
        return f"{looked} in klpsim's built-in modules"
