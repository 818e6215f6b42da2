"""A tiny in-process harness: a booted kernel and a shell to drive it."""

import io
from pathlib import Path

from klpsim.livepatch.system import boot
from klpsim.scenario.parser import parse_script
from klpsim.scenario.runner import ModuleResolver, Runner


class Sim:
    def __init__(self, profile: str = "7.1", module_dirs: list[Path] | None = None, **kw):
        self.system = boot(profile, **kw)
        self.kernel = self.system.kernel
        self.klp = self.system.klp
        self.out, self.err = io.StringIO(), io.StringIO()
        resolver = ModuleResolver(self.system.profile, module_dirs or [], None)
        self.rt = Runner(
            self.system, resolver, "<test>", self.out, self.err, transcript=False, show_stdout=True
        )

    def sh(self, script: str) -> str:
        """Run commands; return what they printed on stdout."""
        start = self.out.tell()
        status = self.rt.run(parse_script(script, "<test>"))
        if status:
            raise AssertionError(f"script failed ({status}): {self.err.getvalue()}")
        return self.out.getvalue()[start:]

    def read(self, path: str) -> str:
        data = self.kernel.fs.read(path)
        assert not isinstance(data, int), f"{path}: {data}"
        return data.rstrip("\n")

    def write(self, path: str, text: str, append: bool = False) -> int:
        """``echo TEXT > PATH`` (``>>`` with *append*): the open's or the write's result."""
        return self.kernel.fs.write(path, text, append)

    def klp_lines(self) -> list[str]:
        return [line for line in self.kernel.log.dmesg() if line.startswith("livepatch:")]

    def tick(self, seconds: float) -> None:
        self.kernel.clock.advance(int(seconds * 1e9))
