"""XFS inodes for the planner: the allocated inode chunks (P2, read in long runs; the rest of
the 64 KiB unit ``xfs_repair`` reads them in, P3), and from each
in-use inode its data fork: extent lists and extent B+trees (``BMAP``/``BMA3`` blocks, P2),
which give the directory blocks (P2), symlink blocks (P2), quota files (P2) and the data of
regular files (P4). Inline (local) forks hold everything in the inode itself.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from engine.metadata.volume import P2, P3, P4, Volume
from engine.metadata.xfs_super import Super

S_IFMT, S_IFDIR, S_IFREG, S_IFLNK = 0xF000, 0x4000, 0x8000, 0xA000
FMT_EXTENTS, FMT_BTREE = 2, 3
READ_MAX = 64 * 1024  # inode chunks are read in runs of at most this
#: ``xfs_repair -n`` reads inode chunks in aligned units of this size (measured: the 32 KiB
#: after the last 32 KiB chunk of an AG are read too)
PREFETCH_UNIT = 64 * 1024
MAX_BMBT_BLOCKS = 1 << 20  # a bound for a corrupt extent tree
BMBT_MAGICS = (b"BMAP", b"BMA3")


class InodeWalker:
    """The inode chunks of one XFS volume, collected AG by AG, then read and walked."""

    def __init__(self, vol: Volume, sb: Super) -> None:
        self.vol = vol
        self.sb = sb
        self.groups: list[tuple[int, int, int]] = []  # (first inode, count, free bits)
        self.specials = set(sb.quota_inos)

    def add_chunk(self, ino: int, count: int, free: int) -> None:
        """``count`` inodes from ``ino`` are allocated; bit i of ``free`` marks ino + i free."""
        self.groups.append((ino, count, free))

    def finish(self) -> None:
        """Plan the chunks and walk the inodes in use."""
        sb = self.sb
        in_use: dict[int, int] = {}  # byte offset -> inode number
        for ino, count, free in self.groups:
            for i in range(count):
                if not free >> i & 1:
                    in_use[sb.ino(ino + i)] = ino + i
        runs = list(_runs(sorted(sb.ino(ino) for ino, n, _ in self.groups for ino in
                                 range(ino, ino + n)), sb.inodesize))  # fmt: skip
        for pos, size in runs:
            self.vol.add(pos, size, P2, "xfs inode chunk")
            tail = -(pos + size) % PREFETCH_UNIT
            self.vol.add(pos + size, tail, P3, "xfs after an inode chunk (xfs_repair reads it)")
            for at in range(pos, pos + size, READ_MAX):
                n = min(READ_MAX, pos + size - at)
                raw = self.vol.read(at, n)
                if raw is None:
                    self.vol.plan.note(f"xfs at {self.vol.start}: inodes at {at} unreadable")
                    continue
                for off in range(0, n, sb.inodesize):
                    found = in_use.get(at + off)
                    if found is not None:
                        self.inode(found, raw[off : off + sb.inodesize])

    def inode(self, ino: int, raw: bytes) -> None:
        if raw[:2] != b"IN":
            return
        mode, version, fmt = struct.unpack_from(">HBB", raw, 2)
        if mode == 0:
            return
        kind = mode & S_IFMT
        nextents = struct.unpack_from(">I", raw, 76)[0]
        forkoff = raw[82]
        core = 176 if version >= 3 else 100
        end = core + forkoff * 8 if forkoff else self.sb.inodesize
        fork = raw[core:end]
        if kind == S_IFDIR:
            self.vol.plan.count("xfs:directories")
            tier, what = P2, "xfs directory"
        elif kind == S_IFREG:
            if ino in self.specials:
                tier, what = P2, "xfs quota file"
            else:
                self.vol.plan.count("xfs:files")
                tier, what = P4, "xfs file data"
        elif kind == S_IFLNK:
            tier, what = P2, "xfs symlink"
        else:
            return
        if fmt == FMT_EXTENTS:
            extents = _extents(fork, min(nextents, len(fork) // 16))
        elif fmt == FMT_BTREE:
            extents = self.bmbt_root(fork)
        else:
            return
        for fsb, count in extents:
            pos = self.sb.fsb(fsb)
            if count and pos + count * self.sb.blocksize <= self.vol.size:
                self.vol.add(pos, count * self.sb.blocksize, tier, what)

    def bmbt_root(self, fork: bytes) -> Iterator[tuple[int, int]]:
        """The extents of a B+tree data fork: the root is in the inode (``bmdr``)."""
        level, numrecs = struct.unpack_from(">HH", fork, 0)
        maxrecs = (len(fork) - 4) // 16
        numrecs = min(numrecs, maxrecs)
        if level == 0 or numrecs == 0:
            return
        ptrs = struct.unpack_from(f">{numrecs}Q", fork, 4 + maxrecs * 8)
        yield from self.bmbt(list(ptrs))

    def bmbt(self, blocks: list[int]) -> Iterator[tuple[int, int]]:
        """Walk extent B+tree blocks (long form) level by level, yielding the leaves' extents."""
        sb, budget = self.sb, MAX_BMBT_BLOCKS
        hdr = 72 if sb.crc else 24
        while blocks and budget > 0:
            children: list[int] = []
            for fsb in blocks:
                budget -= 1
                pos = sb.fsb(fsb)
                if pos + sb.blocksize > self.vol.size:
                    continue
                self.vol.add(pos, sb.blocksize, P2, "xfs extent btree")
                block = self.vol.read(pos, sb.blocksize)
                if block is None or block[:4] not in BMBT_MAGICS:
                    self.vol.plan.note(f"xfs at {self.vol.start}: extent btree block {fsb} bad")
                    continue
                level, numrecs = struct.unpack_from(">HH", block, 4)
                if level == 0:
                    yield from _extents(block[hdr:], min(numrecs, (sb.blocksize - hdr) // 16))
                    continue
                maxrecs = (sb.blocksize - hdr) // 16
                numrecs = min(numrecs, maxrecs)
                children += struct.unpack_from(f">{numrecs}Q", block, hdr + maxrecs * 8)
            blocks = children


def _extents(data: bytes, n: int) -> Iterator[tuple[int, int]]:
    """Packed 128-bit extent records: (start block, block count) of each."""
    for i in range(n):
        hi, lo = struct.unpack_from(">QQ", data, 16 * i)
        count = lo & ((1 << 21) - 1)
        start = ((hi & ((1 << 9) - 1)) << 43) | (lo >> 21)
        yield start, count


def _runs(positions: list[int], size: int) -> Iterator[tuple[int, int]]:
    """Byte ranges of sorted ``size``-byte items at ``positions``, adjacent ones merged."""
    start = end = -1
    for pos in positions:
        if pos == end:
            end += size
            continue
        if end > start:
            yield start, end - start
        start, end = pos, pos + size
    if end > start:
        yield start, end - start
