"""The mounted tree as a pure model: which files there are, where their bytes lie, their modes.

``image`` is the whole input, ``p1``, ``p2``, ... are the partitions found in it, ``mapfile`` is
the live map in ddrescue's format and ``status.json`` the progress. Nothing here touches FUSE,
the engine, a lock or a file: the view (:mod:`ddfs.live.view`) puts this tree together with the
engine's facade, the adapter (``fusefs.py``) asks it, and the reader (``reader.py``) fetches
bytes. With an overlay the image and partition files are writable (mode 0644).
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

from engine.metadata.partitions import Partition

ROOT_INODE = 1
IMAGE_INODE = 2
MAPFILE_INODE = 3
STATUS_INODE = 4
PARTITION_BASE = 100


@dataclass(frozen=True)
class Node:
    """One file of the mount: a window ``[offset, offset+size)`` of the image, or a text file."""

    inode: int
    name: str
    kind: str  # "image", "partition", "mapfile", "status"
    offset: int = 0
    size: int = 0
    writable: bool = False  # an image or partition file of a mount with an overlay

    @property
    def is_data(self) -> bool:
        return self.kind in ("image", "partition")

    @property
    def mode(self) -> int:
        return stat.S_IFREG | (0o644 if self.writable and self.is_data else 0o444)


class SequentialDetector:
    """Spots a reader going forward through a file and says what to read ahead of it."""

    def __init__(self, window: int = 1 << 20, trigger: int = 2) -> None:
        self.window = window
        self.trigger = trigger
        self._next = -1
        self._run = 0
        self._ahead_to = 0

    def note(self, pos: int, size: int) -> tuple[int, int] | None:
        """Record a read of ``[pos, pos+size)``; return a range to read ahead, if any."""
        self._run = self._run + 1 if pos == self._next else 0
        self._next = pos + size
        if self._run + 1 < self.trigger:
            self._ahead_to = 0
            return None
        start = max(self._next, self._ahead_to)
        end = self._next + self.window
        if end - start < self.window // 2:
            return None
        self._ahead_to = end
        return start, end - start


class Tree:
    """The files of a live mount over an image of ``image_size`` bytes."""

    def __init__(self, image_size: int, writable: bool = False) -> None:
        self.image_size = image_size
        self.writable = writable
        self.partitions: list[Partition] = []
        self._nodes: dict[int, Node] = {}
        self._names: dict[str, int] = {}
        for node in (
            Node(IMAGE_INODE, "image", "image", 0, image_size, writable),
            Node(MAPFILE_INODE, "mapfile", "mapfile"),
            Node(STATUS_INODE, "status.json", "status"),
        ):
            self._add(node)

    def _add(self, node: Node) -> None:
        self._nodes[node.inode] = node
        self._names[node.name] = node.inode

    def set_partitions(self, parts: list[Partition]) -> None:
        """Show one file per partition (``p<number>``) and logical volume (``VG-LV``)."""
        for inode in [i for i, n in self._nodes.items() if n.kind == "partition"]:
            del self._names[self._nodes.pop(inode).name]
        self.partitions = parts
        for p in parts:
            end = min(p.end, self.image_size)
            if end > p.start:
                self._add(
                    Node(
                        PARTITION_BASE + p.number,
                        p.file_name,
                        "partition",
                        p.start,
                        end - p.start,
                        self.writable,
                    )
                )

    def node(self, inode: int) -> Node | None:
        return self._nodes.get(inode)

    def lookup(self, name: str) -> Node | None:
        inode = self._names.get(name)
        return self._nodes[inode] if inode is not None else None

    def listing(self) -> list[Node]:
        return sorted(self._nodes.values(), key=lambda n: n.inode)

    def disk_range(self, node: Node, off: int, size: int) -> tuple[int, int]:
        """The image range behind ``size`` bytes at ``off`` of ``node``, clipped at its end."""
        if off >= node.size:
            return node.offset + node.size, 0
        return node.offset + off, min(size, node.size - off)
