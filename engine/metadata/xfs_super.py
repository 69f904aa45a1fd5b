"""XFS superblocks for the planner (:mod:`engine.metadata.xfs`): the fields it needs, the
sanity checks ``xfs_repair`` makes before it trusts one, and where a block or an inode lies.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from engine.metadata.signatures import XFS_MAGIC

SB_READ = 512  # the fields used all lie in the first 512 bytes


@dataclass
class Super:
    """The superblock fields the planner needs."""

    blocksize: int
    dblocks: int
    logstart: int
    rootino: int
    agblocks: int
    agcount: int
    logblocks: int
    sectsize: int
    inodesize: int
    inopblock: int
    agblklog: int
    inopblog: int
    crc: bool  # a version 5 filesystem: CRC headers on every metadata block
    quota_inos: tuple[int, ...]  # the quota and realtime files: metadata kept in files

    def fsb(self, fsbno: int) -> int:
        """The volume byte offset of filesystem block ``fsbno`` (AG number in its high bits)."""
        agno, agbno = fsbno >> self.agblklog, fsbno & ((1 << self.agblklog) - 1)
        return (agno * self.agblocks + agbno) * self.blocksize

    def agb(self, agno: int, agbno: int) -> int:
        return (agno * self.agblocks + agbno) * self.blocksize

    def ino(self, ino: int) -> int:
        """The volume byte offset of inode ``ino``."""
        agbits = self.agblklog + self.inopblog
        agno, agino = ino >> agbits, ino & ((1 << agbits) - 1)
        return self.agb(agno, agino >> self.inopblog) + (agino % self.inopblock) * self.inodesize

    @property
    def fsblocks_valid(self) -> int:
        return self.agblocks * self.agcount


def parse_super(raw: bytes | None) -> Super | None:
    """A sane superblock (the checks of ``xfs_repair``'s ``verify_sb``, in short), or None."""
    if raw is None or len(raw) < 264 or raw[:4] != XFS_MAGIC:
        return None
    bsize, dblocks = struct.unpack_from(">IQ", raw, 4)
    logstart, rootino, rbmino, rsumino = struct.unpack_from(">QQQQ", raw, 48)
    agblocks, agcount, _rbm, logblocks = struct.unpack_from(">IIII", raw, 84)
    version, sectsize, inodesize, inopblock = struct.unpack_from(">HHHH", raw, 100)
    blocklog, sectlog, inodelog, inopblog, agblklog = raw[120:125]
    uq, gq = struct.unpack_from(">QQ", raw, 160)
    pq = struct.unpack_from(">Q", raw, 232)[0]
    ok = (
        9 <= blocklog <= 16
        and bsize == 1 << blocklog
        and 9 <= sectlog <= 15
        and sectsize == 1 << sectlog
        and 8 <= inodelog <= 11
        and inodesize == 1 << inodelog
        and inopblock == bsize // inodesize
        and inopblog == blocklog - inodelog
        and agcount > 0
        and 0 < agblocks <= 1 << agblklog
        and 1 << agblklog >> 1 < agblocks  # agblklog is log2 of agblocks rounded up
        and 0 < dblocks <= agblocks * agcount
    )
    if not ok:
        return None
    crc = version & 0xF == 5
    null = 0xFFFFFFFFFFFFFFFF
    if rbmino in (0, null) or rsumino in (0, null):  # a secondary: mkfs puts them after the root
        rbmino, rsumino = rootino + 1, rootino + 2  # (xfs_repair assumes the same)
    inos = (uq, gq, pq if crc else 0, rbmino, rsumino)
    quota = tuple(q for q in inos if q not in (0, 0xFFFFFFFFFFFFFFFF))
    return Super(
        bsize, dblocks, logstart, rootino, agblocks, agcount, logblocks, sectsize, inodesize,
        inopblock, agblklog, inopblog, crc, quota,
    )  # fmt: skip
