"""A virtual file tree for sysfs, procfs, debugfs and tracefs.

Files are attributes in the kernfs sense: a ``show`` callback that returns
text and a ``store`` callback that takes text and returns the byte count or
a negative errno. Opening follows kernfs_fop_open(): a file opened for
reading needs a read bit and a show; for writing, a write bit and a store.
Root gets no exemption, which is why ``echo 1 > transition`` fails with
-EACCES even for root.

A file may also have an ``open`` callback, run when it is opened for
writing with or without O_TRUNC (the shell's ``>`` and ``>>``): tracefs
files such as ``kprobe_events``, ``set_ftrace_filter`` and ``trace`` act
on O_TRUNC at open time, and an open can fail (``kprobe_events`` while a
probe is enabled: -EBUSY), which the shell reports as a redirection error.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from klpsim.kernel.errno import EACCES, EEXIST, EISDIR, ENOENT, ENOTDIR

__all__ = ["Inode", "VFS", "mode_string", "NotModelled", "S_IFDIR", "S_IFREG"]

S_IFDIR = 0o040000
S_IFREG = 0o100000

Show = Callable[[], "str | int"]
"""A show callback: the file's whole text, or a negative errno that fails
the read (a seq_file show() that returned one)."""
Store = Callable[[str], int]
"""A store callback: the bytes taken (all of them) or a negative errno."""
Open = Callable[[bool], int]
"""An open-for-write callback: ``open(trunc)`` -> 0 or a negative errno."""


class NotModelled(Exception):
    """A write the model cannot carry out faithfully (e.g. a kprobe fetch
    argument whose value the model does not have); the scenario layer turns
    it into an error naming the script line."""


class Inode:
    """A directory or an attribute file."""

    __slots__ = ("name", "mode", "parent", "children", "show", "store", "open")

    def __init__(
        self,
        name: str,
        mode: int,
        parent: Inode | None,
        show: Show | None = None,
        store: Store | None = None,
    ):
        self.name = name
        self.mode = mode
        self.parent = parent
        self.children: dict[str, Inode] | None = {} if mode & S_IFDIR else None  # None: a file
        self.show = show
        self.store = store
        self.open: Open | None = None

    @property
    def is_dir(self) -> bool:
        return self.children is not None

    def entries(self) -> dict[str, Inode]:
        """A directory's children; a file has none to add to."""
        if self.children is None:
            raise NotADirectoryError(self.path())
        return self.children

    def path(self) -> str:
        parts = []
        node = self
        while node.parent is not None:
            parts.append(node.name)
            node = node.parent
        return "/" + "/".join(reversed(parts))


def mode_string(mode: int) -> str:
    """``stat --format %A``: e.g. ``-rw-r--r--``."""
    out = "d" if mode & S_IFDIR else "-"
    for shift in (6, 3, 0):
        bits = (mode >> shift) & 7
        out += ("r" if bits & 4 else "-") + ("w" if bits & 2 else "-") + ("x" if bits & 1 else "-")
    return out


class VFS:
    """The mounted pseudo file systems, as one tree."""

    def __init__(self) -> None:
        self.root = Inode("", S_IFDIR | 0o755, None)

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def _split(path: str) -> tuple[str, ...]:
        # the same few hundred paths over and over (sysfs of every module load)
        return tuple(p for p in path.split("/") if p and p != ".")

    def lookup(self, path: str) -> Inode | None:
        node = self.root
        for part in self._split(path):
            if part == "..":
                node = node.parent or node
                continue
            if node.children is None:
                return None
            nxt = node.children.get(part)
            if nxt is None:
                return None
            node = nxt
        return node

    def mkdir(self, path: str, mode: int = 0o755, exist_ok: bool = True) -> Inode:
        """Create a directory and its parents (kobject_add / debugfs_create_dir)."""
        node = self.root
        parts = self._split(path)
        last = len(parts) - 1
        for i, part in enumerate(parts):
            entries = node.children
            if entries is None:
                raise NotADirectoryError(node.path())
            child = entries.get(part)
            if child is None:
                child = Inode(part, S_IFDIR | mode, node)
                entries[part] = child
            elif i == last and not exist_ok:
                raise FileExistsError(path)
            node = child
        node.entries()  # an existing file is not the directory asked for
        return node

    def add_dir(self, parent: Inode, name: str, mode: int = 0o755) -> Inode | int:
        """kobject_add(): -EEXIST if the name is taken."""
        entries = parent.entries()
        if name in entries:
            return -EEXIST
        node = Inode(name, S_IFDIR | mode, parent)
        entries[name] = node
        return node

    def add_file(
        self,
        parent: Inode,
        name: str,
        mode: int,
        show: Show | None = None,
        store: Store | None = None,
        open: Open | None = None,
    ) -> Inode:
        node = Inode(name, S_IFREG | mode, parent, show, store)
        node.open = open
        parent.entries()[name] = node
        return node

    def create_file(
        self,
        path: str,
        mode: int,
        show: Show | None = None,
        store: Store | None = None,
        open: Open | None = None,
    ) -> Inode:
        head, _, name = path.rstrip("/").rpartition("/")
        return self.add_file(self.mkdir(head), name, mode, show, store, open)

    def remove(self, node: Inode | str) -> None:
        """Remove a file or a whole directory (kobject_del / debugfs_remove)."""
        if isinstance(node, str):
            found = self.lookup(node)
            if found is None:
                return
            node = found
        parent = node.parent
        if parent is not None and parent.entries().get(node.name) is node:
            del parent.entries()[node.name]

    def read(self, path: str) -> str | int:
        """The text of a file, or a negative errno."""
        node = self.lookup(path)
        if node is None:
            return -ENOENT
        if node.is_dir:
            return -EISDIR
        if not node.mode & 0o444 or node.show is None:
            return -EACCES
        return node.show()

    def open_write(self, path: str, append: bool = False) -> int:
        """open(O_WRONLY | (O_APPEND or O_TRUNC)): 0 or a negative errno."""
        node = self.lookup(path)
        if node is None:
            return -ENOENT
        if node.is_dir:
            return -EISDIR
        if not node.mode & 0o222 or node.store is None:
            return -EACCES
        if node.open is not None:
            return node.open(not append)
        return 0

    def write(self, path: str, data: str, append: bool = False) -> int:
        """Open, write *data*; the open's error or the store's return value
        (count or -errno). Nothing is written when *data* is empty."""
        ret = self.open_write(path, append)
        if ret < 0:
            return ret
        return self.store(path, data)

    def store(self, path: str, data: str) -> int:
        """write(2) on a file already opened: the store's return value."""
        node = self.lookup(path)
        if node is None or node.store is None:
            return -ENOENT
        if not data:
            return 0
        return node.store(data)

    def listdir(self, path: str) -> list[str] | int:
        node = self.lookup(path)
        if node is None:
            return -ENOENT
        if node.children is None:
            return -ENOTDIR
        return sorted(node.children)
