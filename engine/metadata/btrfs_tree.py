"""btrfs B-tree nodes for :mod:`engine.metadata.btrfs`: read, verify, walk.

A node is ``nodesize`` bytes at a logical address: a 101-byte header (checksum, fsid, its own
logical address, owner, item count, level), then in a leaf (level 0) 25-byte items whose data
lies at the end of the node, or in an internal node 33-byte key pointers to its children. A
node is trusted only when its checksum (crc32c), fsid, address and level are what its parent
(or the superblock) says; otherwise the other copies (DUP, RAID1) are tried, and if none is
good the node is planned but not walked, with a note. Every copy of a node is planned: the
first at the tree's tier, the others P3. The walk is bounded: levels only go down, each node
is visited once, and the number of nodes is capped by the volume's size.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from engine.metadata.btrfs_super import CSUM_CRC32C, KEY_SIZE, ChunkMap, Super, csum_ok
from engine.metadata.volume import P3, Volume

HEADER = 101
ITEM = KEY_SIZE + 8  # key, data offset u32, data size u32
KEY_PTR = KEY_SIZE + 16  # key, blockptr u64, generation u64
MAX_LEVEL = 8
MAX_NOTES = 50  # per volume; the rest are counted in "btrfs:bad nodes" / "btrfs:unmapped"


@dataclass
class Node:
    """A verified tree node."""

    logical: int
    level: int
    owner: int
    raw: bytes
    bad_items: int = 0

    @property
    def nritems(self) -> int:
        return int(struct.unpack_from("<I", self.raw, 0x60)[0])

    def items(self) -> Iterator[tuple[int, int, int, bytes]]:
        """A leaf's items: (objectid, type, offset, data); an item whose data is not in the
        node's data area is skipped and counted in ``bad_items``."""
        raw, n = self.raw, self.nritems
        for i in range(n):
            oid, ktype, koff, doff, dsize = struct.unpack_from("<QBQII", raw, HEADER + i * ITEM)
            if n * ITEM <= doff and HEADER + doff + dsize <= len(raw):
                yield oid, ktype, koff, raw[HEADER + doff : HEADER + doff + dsize]
            else:
                self.bad_items += 1

    def children(self) -> Iterator[tuple[int, int, int, int]]:
        """An internal node's pointers: (key objectid, key type, key offset, child address)."""
        for i in range(self.nritems):
            oid, ktype, koff, ptr = struct.unpack_from("<QBQQ", self.raw, HEADER + i * KEY_PTR)
            yield oid, ktype, koff, ptr


def label(what: str) -> str:
    """A note's start: "btrfs fs tree" -> "btrfs: fs tree"."""
    return f"btrfs: {what.removeprefix('btrfs ')}"


#: what a walk does with each leaf; it returns numbers summed over the tree (file counts),
#: remembered per node so that a subtree shared by snapshots is read once and counted for each
LeafVisitor = Callable[[Node], tuple[int, int]]


class Trees:
    """Reads and walks the trees of one volume."""

    def __init__(self, vol: Volume, sb: Super, chunks: ChunkMap) -> None:
        self.vol = vol
        self.sb = sb
        self.chunks = chunks
        self.budget = max(64, vol.size // sb.nodesize)  # no more nodes than fit in the volume
        self.done: dict[int, tuple[int, int]] = {}  # logical -> the subtree's visitor sums
        self.notes = 0
        if sb.csum_type != CSUM_CRC32C:
            self.note(f"btrfs: checksum type {sb.csum_type} not verified (crc32c only)")

    def note(self, text: str) -> None:
        self.notes += 1
        if self.notes <= MAX_NOTES:
            self.vol.plan.note(text)
        elif self.notes == MAX_NOTES + 1:
            self.vol.plan.note("btrfs: more problems; see the counts")

    def plan_node(self, logical: int, tier: int, what: str) -> list[list[tuple[int, int]]]:
        """Plan every copy of the node at ``logical``; return the copies."""
        copies = self.chunks.copies(logical, self.sb.nodesize)
        for i, copy in enumerate(copies):
            for pos, n in copy:
                self.vol.add(pos, n, tier if i == 0 else P3, what if i == 0 else f"{what} copy")
        return copies

    def read_node(self, logical: int, level: int, tier: int, what: str) -> Node | None:
        """The node at ``logical`` (planned), from the first copy that verifies, or None."""
        copies = self.plan_node(logical, tier, what)
        if not copies:
            self.vol.plan.count("btrfs:unmapped")
            self.note(f"{label(what)} node at logical {logical} is in no mapped chunk")
            return None
        why = "unreadable"
        for i, copy in enumerate(copies):
            parts = [self.vol.read(pos, n) for pos, n in copy]
            if any(p is None for p in parts):
                continue
            raw = b"".join(p for p in parts if p is not None)
            why = self.check(raw, logical, level)
            if not why:
                (owner,) = struct.unpack_from("<Q", raw, 0x58)
                if i:
                    self.vol.plan.count("btrfs:nodes read from another copy")
                    self.note(f"{label(what)} node at logical {logical}: copy {i + 1} used")
                return Node(logical, level, owner, raw)
        self.vol.plan.count("btrfs:bad nodes")
        self.note(f"{label(what)} node at logical {logical} {why} (planned, not walked)")
        return None

    def check(self, raw: bytes, logical: int, level: int) -> str:
        """Why the node ``raw`` cannot be trusted, or "" if it can."""
        if len(raw) != self.sb.nodesize:
            return "short"
        if self.sb.csum_type == CSUM_CRC32C and not csum_ok(raw):
            return "fails its checksum"
        if raw[0x20:0x30] != self.sb.fsid:
            return "has another fsid"
        (bytenr,) = struct.unpack_from("<Q", raw, 0x30)
        if bytenr != logical:
            return f"says it is at {bytenr}"
        nritems, found = struct.unpack_from("<IB", raw, 0x60)
        if found != level:
            return f"has level {found}, not {level}"
        if HEADER + nritems * (KEY_PTR if level else ITEM) > len(raw):
            return f"has {nritems} items, more than fit"
        return ""

    def walk(
        self, root: int, level: int, tier: int, what: str, leaf: LeafVisitor
    ) -> tuple[int, int]:
        """Plan and walk the tree at ``root``; the sums of ``leaf`` over its leaves."""
        if not 0 <= level < MAX_LEVEL:
            self.note(f"{label(what)} root at {root} has impossible level {level}")
            return 0, 0
        return self._walk(root, level, tier, what, leaf)

    def _walk(
        self, logical: int, level: int, tier: int, what: str, leaf: LeafVisitor
    ) -> tuple[int, int]:
        if logical in self.done:  # shared (snapshots) or a corrupt loop: planned already
            return self.done[logical]
        self.done[logical] = (0, 0)
        if self.budget <= 0:
            if self.budget == 0:
                self.note("btrfs: more tree nodes than fit in the volume; walk stopped")
                self.budget -= 1
            return 0, 0
        self.budget -= 1
        node = self.read_node(logical, level, tier, what)
        if node is None:
            return 0, 0
        a = b = 0
        if level == 0:
            a, b = leaf(node)
            if node.bad_items:
                self.vol.plan.count("btrfs:bad items", node.bad_items)
                self.note(f"{label(what)} leaf at {logical}: {node.bad_items} items out of bounds")
        else:
            for _oid, _type, _off, child in node.children():
                x, y = self._walk(child, level - 1, tier, what, leaf)
                a, b = a + x, b + y
        self.done[logical] = (a, b)
        return a, b
