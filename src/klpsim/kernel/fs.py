"""A virtual file tree for sysfs, procfs, debugfs and tracefs.

Files are attributes in the kernfs sense: a ``show`` callback that returns
text and a ``store`` callback that takes text and returns the byte count or
a negative errno. Opening follows kernfs_fop_open(): a file opened for
reading needs a read bit and a show; for writing, a write bit and a store.
Root gets no exemption, which is why ``echo 1 > transition`` fails with
-EACCES even for root.
"""

from collections.abc import Callable

from klpsim.kernel.errno import EACCES, EEXIST, EISDIR, ENOENT, ENOTDIR

__all__ = ["Inode", "VFS", "mode_string", "S_IFDIR", "S_IFREG"]

S_IFDIR = 0o040000
S_IFREG = 0o100000

Show = Callable[[], str]
Store = Callable[[str], int]


class Inode:
    """A directory or an attribute file."""

    __slots__ = ("name", "mode", "parent", "children", "show", "store")

    def __init__(self, name: str, mode: int, parent: "Inode | None", show=None, store=None):
        self.name = name
        self.mode = mode
        self.parent = parent
        self.children: dict[str, Inode] | None = {} if mode & S_IFDIR else None
        self.show: Show | None = show
        self.store: Store | None = store

    @property
    def is_dir(self) -> bool:
        return self.children is not None

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
    def _split(path: str) -> list[str]:
        return [p for p in path.split("/") if p and p != "."]

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
        for i, part in enumerate(parts):
            child = node.children.get(part)
            if child is None:
                child = Inode(part, S_IFDIR | mode, node)
                node.children[part] = child
            elif i == len(parts) - 1 and not exist_ok:
                raise FileExistsError(path)
            node = child
        return node

    def add_dir(self, parent: Inode, name: str, mode: int = 0o755) -> Inode | int:
        """kobject_add(): -EEXIST if the name is taken."""
        if name in parent.children:
            return -EEXIST
        node = Inode(name, S_IFDIR | mode, parent)
        parent.children[name] = node
        return node

    def add_file(self, parent: Inode, name: str, mode: int, show=None, store=None) -> Inode:
        node = Inode(name, S_IFREG | mode, parent, show, store)
        parent.children[name] = node
        return node

    def create_file(self, path: str, mode: int, show=None, store=None) -> Inode:
        head, _, name = path.rstrip("/").rpartition("/")
        return self.add_file(self.mkdir(head), name, mode, show, store)

    def remove(self, node: Inode | str) -> None:
        """Remove a file or a whole directory (kobject_del / debugfs_remove)."""
        if isinstance(node, str):
            node = self.lookup(node)
            if node is None:
                return
        if node.parent is not None and node.parent.children.get(node.name) is node:
            del node.parent.children[node.name]

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

    def write(self, path: str, data: str) -> int:
        """Write *data*; the store's return value (count or -errno)."""
        node = self.lookup(path)
        if node is None:
            return -ENOENT
        if node.is_dir:
            return -EISDIR
        if not node.mode & 0o222 or node.store is None:
            return -EACCES
        return node.store(data)

    def listdir(self, path: str) -> list[str] | int:
        node = self.lookup(path)
        if node is None:
            return -ENOENT
        if not node.is_dir:
            return -ENOTDIR
        return sorted(node.children)
