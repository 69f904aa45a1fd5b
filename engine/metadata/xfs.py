"""XFS for the metadata planner: the superblock, each allocation group's headers and B+trees,
the allocated inode chunks, and from the inodes the directories and the file extents.

The walk is what ``xfs_repair -n`` reads (phases 2-4): for every AG the superblock copy, the
AGF, AGI and AGFL sectors, the free-space B+trees (by block and by size), the inode B+trees
(and the free-inode, reverse-mapping and reference-count B+trees where the filesystem has
them), then every allocated inode chunk the inode B+tree lists; each in-use inode's data fork
(:mod:`engine.metadata.xfs_inodes`) gives the directory blocks and the extents of files.

Tiers: P0 the primary superblock; P1 every AG's AGF, AGI and AGFL; P2 the B+tree blocks, the
free-list blocks, the inode chunks, directory blocks, extent-tree blocks and symlinks; P3 the
secondary superblocks, the internal log and the short gaps between metadata blocks that
``xfs_repair``'s prefetch reads across; P4 the data of regular files.

Fallbacks, as ``xfs_repair`` does: an unreadable primary superblock leads to AG 1's secondary
(looked for where the usual AG counts put it: ``signatures.xfs_secondary_offsets``); an
unreadable AG header or B+tree block is noted and the rest of the walk goes on. Counts:
``xfs:inode_chunks``, ``xfs:directories``, ``xfs:files``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from engine.metadata.signatures import XFS_MAGIC, xfs_secondary_offsets
from engine.metadata.volume import P0, P1, P2, P3, Volume
from engine.metadata.xfs_inodes import InodeWalker
from engine.metadata.xfs_super import SB_READ, Super, parse_super

NAME = "xfs"
PREFETCH_GAP = 64 * 1024  # gaps xfs_repair's prefetch reads across, at most (measured)
MAX_TREE_BLOCKS = 1 << 22  # a bound for a corrupt B+tree (cycles, absurd levels)

# short-form (per-AG) B+tree magics: version 4 and version 5 (CRC) spellings
BNO = (b"ABTB", b"AB3B")
CNT = (b"ABTC", b"AB3C")
INO = (b"IABT", b"IAB3")
FINO = (b"FIBT", b"FIB3")
RMAP = (b"RMB3",)
REFC = (b"R3FC",)
#: key bytes in the nodes of each B+tree (pointers are 4-byte AG block numbers); the reverse
#: mapping B+tree overlaps, so its nodes hold a low and a high key of 20 bytes each
KEY_BYTES = {INO: 4, FINO: 4, REFC: 4, RMAP: 40, BNO: 8, CNT: 8}
#: ``leaf(agno, block, header_bytes, numrecs)``
Leaf = Callable[[int, bytes, int, int], None]


def find_super(vol: Volume) -> tuple[Super | None, bool]:
    """The primary superblock; or, when sector 0 cannot be read, AG 1's copy (if it sits
    where its own fields put AG 1). Returns it and whether it is the secondary."""
    first = vol.read(0, SB_READ)
    if first is not None:
        return parse_super(first), False
    for off in xfs_secondary_offsets(vol.size):
        raw = vol.read(off, SB_READ)
        if raw is None or raw[:4] != XFS_MAGIC:
            continue
        sb = parse_super(raw)
        if sb is not None and sb.agblocks * sb.blocksize == off:
            return sb, True
    return None, False


def probe(vol: Volume) -> bool:
    return find_super(vol)[0] is not None


def plan(vol: Volume) -> None:
    sb, secondary = find_super(vol)
    if sb is None:
        vol.plan.note(f"xfs at {vol.start}: no valid superblock")
        return
    if secondary:
        vol.plan.note(f"xfs at {vol.start}: primary superblock unreadable; using AG 1's copy")
    if sb.dblocks * sb.blocksize > vol.size:
        vol.plan.note(f"xfs at {vol.start}: the volume is smaller than its superblock says")
    XfsPlanner(vol, sb).run()


class XfsPlanner:
    """One walk of one XFS volume."""

    def __init__(self, vol: Volume, sb: Super) -> None:
        self.vol = vol
        self.sb = sb
        self.inodes = InodeWalker(vol, sb)

    def note(self, text: str) -> None:
        self.vol.plan.note(f"xfs at {self.vol.start}: {text}")

    def run(self) -> None:
        sb, vol = self.sb, self.vol
        vol.add(0, sb.sectsize, P0, "xfs superblock")
        if sb.logstart:  # an internal log
            vol.add(sb.fsb(sb.logstart), sb.logblocks * sb.blocksize, P3, "xfs log")
        first_area = len(vol.plan.areas)
        for agno in range(sb.agcount):
            self.plan_ag(agno)
        self.inodes.finish()
        self.plan_gaps(first_area)

    def plan_gaps(self, first_area: int) -> None:
        """Short gaps between the blocks planned P1-P2 are planned P3: ``xfs_repair``'s
        prefetch reads across them in one request (as a drive does in one revolution), so
        they are what its reads need once the metadata is in."""
        spans = sorted(
            (a.start, a.end) for a in self.vol.plan.areas[first_area:] if 1 <= a.tier <= P2
        )
        end = -1
        for start, stop in spans:
            if 0 <= end < start and start - end <= PREFETCH_GAP:
                self.vol.plan.add(end, start - end, P3, "xfs gap between metadata blocks")
            end = max(end, stop)

    def plan_ag(self, agno: int) -> None:
        sb, vol = self.sb, self.vol
        base = sb.agb(agno, 0)
        if agno:
            vol.add(base, sb.sectsize, P3, f"xfs secondary superblock {agno}")
        vol.add(base + sb.sectsize, 3 * sb.sectsize, P1, f"xfs AG {agno} headers")
        agf = vol.read(base + sb.sectsize, sb.sectsize)
        if agf is None or agf[:4] != b"XAGF":
            self.note(f"AGF of AG {agno} unreadable or invalid")
        else:
            roots = struct.unpack_from(">III", agf, 16)
            levels = struct.unpack_from(">III", agf, 28)
            for root, level, magics, what in zip(
                roots, levels, (BNO, CNT, RMAP), ("free space", "free space", "rmap"), strict=True
            ):
                if level and (what != "rmap" or sb.crc):
                    self.walk(agno, root, magics, f"xfs {what} btree", leaf=None)
            refc_root, refc_level = struct.unpack_from(">II", agf, 88)
            if sb.crc and refc_level:
                self.walk(agno, refc_root, REFC, "xfs refcount btree", leaf=None)
            self.free_list(agno, agf)
        agi = vol.read(base + 2 * sb.sectsize, sb.sectsize)
        if agi is None or agi[:4] != b"XAGI":
            self.note(f"AGI of AG {agno} unreadable or invalid")
            return
        root, level = struct.unpack_from(">II", agi, 20)
        if level:
            self.walk(agno, root, INO, "xfs inode btree", leaf=self.inode_records)
        if sb.crc:
            froot, flevel = struct.unpack_from(">II", agi, 328)
            if flevel and 0 < froot < sb.agblocks:
                self.walk(agno, froot, FINO, "xfs free inode btree", leaf=None)

    def free_list(self, agno: int, agf: bytes) -> None:
        """The blocks the AGFL keeps for B+tree growth (``xfs_repair`` checks them)."""
        sb = self.sb
        first, last, count = struct.unpack_from(">III", agf, 40)
        agfl = self.vol.read(sb.agb(agno, 0) + 3 * sb.sectsize, sb.sectsize)
        hdr = 36 if sb.crc else 0
        slots = (sb.sectsize - hdr) // 4
        if agfl is None or count > slots or first >= slots or last >= slots:
            return
        if sb.crc and agfl[:4] != b"XAFL":
            return
        for k in range(count):
            agbno = struct.unpack_from(">I", agfl, hdr + 4 * ((first + k) % slots))[0]
            if 0 < agbno < sb.agblocks:
                self.vol.add(sb.agb(agno, agbno), sb.blocksize, P2, "xfs free list block")

    # -------------------------------------------------------------- short-form B+trees
    def walk(
        self, agno: int, root: int, magics: tuple[bytes, ...], what: str, leaf: Leaf | None
    ) -> None:
        """Plan every block of one AG's B+tree, breadth first; ``leaf(agno, block)`` is given
        the leaves (the inode B+tree's records)."""
        sb, vol = self.sb, self.vol
        hdr = 56 if sb.crc else 16
        level_blocks = [root]
        seen: set[int] = set()
        while level_blocks and len(seen) < MAX_TREE_BLOCKS:
            children: list[int] = []
            for agbno in level_blocks:
                if not 0 < agbno < sb.agblocks or agbno in seen:
                    continue
                seen.add(agbno)
                pos = sb.agb(agno, agbno)
                vol.add(pos, sb.blocksize, P2, what)
                block = vol.read(pos, sb.blocksize)
                if block is None or block[:4] not in magics:
                    self.note(f"{what} block {agno}/{agbno} unreadable or invalid")
                    continue
                level, numrecs = struct.unpack_from(">HH", block, 4)
                if level == 0:
                    if leaf is not None:
                        leaf(agno, block, hdr, numrecs)
                    continue
                keylen = KEY_BYTES.get(magics, 8)
                maxrecs = (sb.blocksize - hdr) // (keylen + 4)
                numrecs = min(numrecs, maxrecs)
                ptrs = hdr + maxrecs * keylen
                children += struct.unpack_from(f">{numrecs}I", block, ptrs)
            level_blocks = children

    def inode_records(self, agno: int, block: bytes, hdr: int, numrecs: int) -> None:
        """Inode B+tree leaf records: the allocated chunks (64 inodes each; sparse chunks
        skip the holes of their hole mask)."""
        sb = self.sb
        numrecs = min(numrecs, (sb.blocksize - hdr) // 16)
        for i in range(numrecs):
            startino, holemask, _count, _freecount, free = struct.unpack_from(
                ">IHBBQ", block, hdr + 16 * i
            )
            for group in range(16):  # 4 inodes per hole-mask bit
                if holemask >> group & 1:
                    continue
                first = startino + 4 * group
                ino = (agno << (sb.agblklog + sb.inopblog)) | first
                self.inodes.add_chunk(ino, 4, free >> (4 * group) & 0xF)
            self.vol.plan.count("xfs:inode_chunks")
