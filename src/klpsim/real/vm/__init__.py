"""The real-kernel tier: Debian's 6.1 and 6.12 kernels under QEMU/TCG.

Nothing heavy is imported until a name is used::

    from klpsim.real.vm import prepare
    rk = prepare("6.12")
    with rk.boot() as vm:
        res = rk.run_script(vm, "scenario.sh", modules_dirs=["defs/"])

Submodules: debian (packages), build (kbuild), modgen (TOML -> C),
initramfs, vm (the QEMU guest), selftests, api (RealKernel), cli
(``klpsim vm``).  Kernel sources, functions.sh and the test modules are
fetched from Debian's linux-source at run time; none is part of klpsim.
"""

from __future__ import annotations

__all__ = ["RealKernel", "VM", "VMError", "VMResult", "prepare"]

_WHERE = {
    "RealKernel": "api",
    "prepare": "api",
    "VM": "vm",
    "VMResult": "vm",
    "VMError": "errors",
}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(name)
