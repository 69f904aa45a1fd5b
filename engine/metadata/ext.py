"""ext2/3/4 for the metadata planner: superblock, group descriptors, inode tables, every in-use
inode's extent tree or block map, directories, journal.

The walk is e2fsck's pass 1: the inode tables are scanned (not only the directory tree), so a
lost directory does not hide its children. Fallbacks follow libext2fs: an unreadable or invalid
primary superblock leads to the backups (groups 1, 3, 5, 7, 9, 25, 27, ... for each block
size). Superblocks and group descriptors are read by :mod:`engine.metadata.ext_super`: a
descriptor of a backup GDT, or one that fails its checksum, is used without its UNINIT flags
and ``itable_unused``, so its bitmaps and whole inode table are planned. Otherwise only what it
says is in use is: the bitmaps of initialized groups, the inode table up to ``itable_unused``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from engine.metadata.ext_super import (
    BG_BLOCK_UNINIT,
    BG_INODE_UNINIT,
    INCOMPAT_META_BG,
    SB_OFFSET,
    Desc,
    Super,
    find_backup_super,
    parse_desc,
    parse_super,
)
from engine.metadata.volume import P0, P1, P2, P3, P4, Volume

# re-exported for ``ddfs report`` (engine.damage.ext)
__all__ = ["INCOMPAT_META_BG", "SB_OFFSET", "Desc", "Super", "find_backup_super", "parse_super"]

NAME = "ext"
EXTENTS_FL, INLINE_DATA_FL = 0x80000, 0x10000000
EXTENT_MAGIC = 0xF30A
S_IFMT, S_IFDIR, S_IFREG, S_IFLNK = 0xF000, 0x4000, 0x8000, 0xA000
JOURNAL_INO, RESIZE_INO, ROOT_INO = 8, 7, 2
MAX_BLOCKS_PER_INODE = 1 << 22  # sanity bound for a corrupt block map
SECTOR = 512  # the smallest piece of an inode table read on its own


def probe(vol: Volume) -> bool:
    raw = vol.read(SB_OFFSET, 1024)
    if raw is not None and parse_super(raw, SB_OFFSET) is not None:
        return True
    return find_backup_super(vol) is not None


class ExtPlanner:
    """One walk of one ext volume."""

    def __init__(self, vol: Volume, sb: Super, from_backup: bool) -> None:
        self.vol = vol
        self.sb = sb
        self.bs = sb.bs
        self.from_backup = from_backup

    # -------------------------------------------------------------- layout
    def gdt_blocks(self) -> int:
        per_block = self.bs // self.sb.desc_size
        return -(-self.sb.groups // per_block)

    def group_start(self, group: int) -> int:
        return group * self.sb.bpg + self.sb.first_data_block

    def gdt_block_location(self, i: int, copy_group: int) -> int:
        """Block number of GDT block ``i`` in the copy kept in ``copy_group``'s area."""
        sb = self.sb
        if sb.incompat & INCOMPAT_META_BG and i >= sb.first_meta_bg:
            per_block = self.bs // sb.desc_size
            group = i * per_block
            start = self.group_start(group)
            return start + (1 if sb.has_super(group) else 0)
        return self.group_start(copy_group) + 1 + i

    def plan_layout(self) -> None:
        """Superblocks and GDT copies: primary P0/P1, backups P3."""
        vol, sb, bs = self.vol, self.sb, self.bs
        vol.add(SB_OFFSET, 1024, P0, "ext superblock")
        ngdt = self.gdt_blocks()
        nflat = min(ngdt, sb.first_meta_bg) if sb.incompat & INCOMPAT_META_BG else ngdt
        for g in range(sb.groups):
            if not sb.has_super(g):
                continue
            start = self.group_start(g) * bs
            primary = g == 0
            if not primary:
                vol.add(start, 1024, P3, f"ext backup superblock {g}")
            vol.add(start + bs, nflat * bs, P1 if primary else P3, f"ext GDT copy {g}")
            vol.add(
                start + (1 + nflat) * bs,
                sb.reserved_gdt * bs,
                P2 if primary else P3,
                f"ext reserved GDT {g}",
            )
        if sb.incompat & INCOMPAT_META_BG:
            per_block = bs // sb.desc_size
            for i in range(sb.first_meta_bg, ngdt):
                group = i * per_block
                blk = self.gdt_block_location(i, 0)
                vol.add(blk * bs, bs, P1, "ext meta_bg GDT")
                for copy in (group + 1, group + per_block - 1):
                    if copy < sb.groups:
                        cblk = self.group_start(copy) + (1 if sb.has_super(copy) else 0)
                        vol.add(cblk * bs, bs, P3, "ext meta_bg GDT copy")

    # -------------------------------------------------------------- descriptors
    def read_descriptors(self) -> list[Desc] | None:
        sb, bs = self.sb, self.bs
        per_block = bs // sb.desc_size
        copy_group = sb.group_nr if self.from_backup else 0
        descs: list[Desc] = []
        for i in range(self.gdt_blocks()):
            blk = self.gdt_block_location(i, copy_group)
            raw = self.vol.read(blk * bs, bs)
            if raw is None:
                return None
            for j in range(per_block):
                if len(descs) == sb.groups:
                    break
                descs.append(
                    parse_desc(sb, raw, j * sb.desc_size, len(descs), not self.from_backup)
                )
        if not all(self._sane(d) for d in descs):
            return None
        return descs

    def _sane(self, d: Desc) -> bool:
        n = self.sb.blocks
        return 0 < d.block_bitmap < n and 0 < d.inode_bitmap < n and 0 < d.inode_table < n

    # -------------------------------------------------------------- inodes
    def plan_groups(self, descs: list[Desc]) -> None:
        sb, bs, vol = self.sb, self.bs, self.vol
        table_bytes = sb.ipg * sb.inode_size
        for g, d in enumerate(descs):
            # what a (trusted, checked) descriptor says is not in use is not planned: e2fsck
            # reads neither the bitmaps of uninitialized groups nor unused inodes
            if not (sb.csum and d.flags & BG_BLOCK_UNINIT):
                vol.add(d.block_bitmap * bs, bs, P2, "ext block bitmap")
            if not (sb.csum and d.flags & BG_INODE_UNINIT):
                vol.add(d.inode_bitmap * bs, bs, P2, "ext inode bitmap")
            used = table_bytes
            if sb.csum and d.flags & BG_INODE_UNINIT:
                used = 0
            elif sb.csum:
                used = max(0, (sb.ipg - d.itable_unused) * sb.inode_size)
            vol.add(d.inode_table * bs, used, P2, f"ext inode table {g}")

    def walk_inodes(self, descs: list[Desc]) -> None:
        sb, bs = self.sb, self.bs
        chunk = max(bs, 64 * 1024 // sb.inode_size * sb.inode_size)
        for g, d in enumerate(descs):
            used = sb.ipg
            if sb.csum and d.flags & BG_INODE_UNINIT:
                continue
            if sb.csum:
                used = sb.ipg - d.itable_unused
            nbytes = used * sb.inode_size
            base = d.inode_table * bs
            for off in range(0, nbytes, chunk):
                for at, raw in self.read_table(base, off, min(chunk, nbytes - off), g):
                    for k in range(0, len(raw), sb.inode_size):
                        ino = g * sb.ipg + (at + k) // sb.inode_size + 1
                        self.inode(ino, raw[k : k + sb.inode_size])

    def read_table(self, base: int, off: int, size: int, group: int) -> Iterator[tuple[int, bytes]]:
        """``(offset, bytes)`` pieces of ``[off, off+size)`` of an inode table: the whole range,
        or where it cannot be read, block by block and then sector by sector, so that a bad
        sector costs only the inodes in it (each noted), not the rest of the range."""
        raw = self.vol.read(base + off, size)
        if raw is not None:
            yield off, raw
            return
        step = self.bs if size > self.bs else max(SECTOR, self.sb.inode_size)
        if size <= step:
            self.vol.plan.note(f"ext: inode table of group {group} unreadable at {off}")
            return
        for at in range(off, off + size, step):
            yield from self.read_table(base, at, min(step, off + size - at), group)

    def inode(self, ino: int, raw: bytes) -> None:
        (mode,) = struct.unpack_from("<H", raw, 0)
        (links,) = struct.unpack_from("<H", raw, 26)
        (dtime,) = struct.unpack_from("<I", raw, 20)
        if mode == 0 or (links == 0 and ino >= 11) or (dtime and ino >= 11):
            return
        kind = mode & S_IFMT
        (flags,) = struct.unpack_from("<I", raw, 32)
        size = struct.unpack_from("<I", raw, 4)[0] | struct.unpack_from("<I", raw, 108)[0] << 32
        acl = struct.unpack_from("<I", raw, 104)[0] | struct.unpack_from("<H", raw, 118)[0] << 32
        if acl:
            self.vol.add(acl * self.bs, self.bs, P2, "ext xattr block")
        if ino == JOURNAL_INO or ino == self.sb.journal_inum:
            self.data(raw, flags, P3, "ext journal", first=(P2, "ext journal superblock"))
            return
        if ino < 11 and ino not in (ROOT_INO, RESIZE_INO) and kind != S_IFDIR:
            self.data(raw, flags, P2, "ext special inode")
            return
        if flags & INLINE_DATA_FL:
            return
        if kind == S_IFDIR:
            self.vol.plan.count("ext:directories")
            self.data(raw, flags, P2, "ext directory")
        elif kind == S_IFREG:
            if ino >= 11:
                self.vol.plan.count("ext:files")
            if ino == RESIZE_INO:  # the reserved GDT blocks: the primary's P2, backups P3
                self.data(raw, flags, P3, "ext reserved GDT (resize inode)")
            else:
                self.data(raw, flags, P4, "ext file data")
        elif kind == S_IFLNK and size >= 60:
            self.data(raw, flags, P2, "ext symlink")

    # -------------------------------------------------------------- block lists
    def data(
        self,
        raw: bytes,
        flags: int,
        tier: int,
        what: str,
        first: tuple[int, str] | None = None,
    ) -> None:
        """Plan an inode's blocks: tree blocks P2, data blocks at ``tier``."""
        i_block = raw[40:100]
        runs = list(self.extents(i_block) if flags & EXTENTS_FL else self.blockmap(i_block))
        for i, (blk, n) in enumerate(runs):
            if i == 0 and first is not None:
                self.vol.add(blk * self.bs, self.bs, first[0], first[1])
                blk, n = blk + 1, n - 1
            if n > 0 and blk + n <= self.sb.blocks:
                self.vol.add(blk * self.bs, n * self.bs, tier, what)

    def extents(self, node: bytes, depth_left: int = 8) -> Iterator[tuple[int, int]]:
        magic, entries, _max, depth = struct.unpack_from("<4H", node, 0)
        if magic != EXTENT_MAGIC or 12 + 12 * entries > len(node) or depth_left <= 0:
            return
        for e in range(entries):
            off = 12 + 12 * e
            if depth == 0:
                _lblk, length, hi, lo = struct.unpack_from("<IHHI", node, off)
                if length > 32768:
                    length -= 32768  # an unwritten extent: still allocated
                yield (hi << 32 | lo), length
            else:
                _lblk, lo, hi = struct.unpack_from("<IIH", node, off)
                child = hi << 32 | lo
                if not 0 < child < self.sb.blocks:
                    continue
                self.vol.add(child * self.bs, self.bs, P2, "ext extent block")
                sub = self.vol.read(child * self.bs, self.bs)
                if sub is None:
                    self.vol.plan.note(f"ext: extent block {child} unreadable")
                    continue
                yield from self.extents(sub, depth_left - 1)

    def blockmap(self, i_block: bytes) -> Iterator[tuple[int, int]]:
        ptrs = struct.unpack_from("<15I", i_block, 0)
        budget = [MAX_BLOCKS_PER_INODE]
        for p in ptrs[:12]:
            if p:
                yield p, 1
        for level, p in ((1, ptrs[12]), (2, ptrs[13]), (3, ptrs[14])):
            if p:
                yield from self.indirect(p, level, budget)

    def indirect(self, blk: int, level: int, budget: list[int]) -> Iterator[tuple[int, int]]:
        if not 0 < blk < self.sb.blocks or budget[0] <= 0:
            return
        budget[0] -= 1
        self.vol.add(blk * self.bs, self.bs, P2, "ext indirect block")
        raw = self.vol.read(blk * self.bs, self.bs)
        if raw is None:
            self.vol.plan.note(f"ext: indirect block {blk} unreadable")
            return
        for p in struct.unpack_from(f"<{self.bs // 4}I", raw, 0):
            if not p:
                continue
            if level == 1:
                budget[0] -= 1
                yield p, 1
            else:
                yield from self.indirect(p, level - 1, budget)


def plan(vol: Volume) -> None:
    raw = vol.read(SB_OFFSET, 1024)
    sb = parse_super(raw, SB_OFFSET) if raw is not None else None
    from_backup = False
    if sb is None:
        sb = find_backup_super(vol)
        if sb is None:
            vol.plan.note("ext: no readable superblock")
            return
        from_backup = True
        vol.plan.note(
            f"ext: primary superblock unreadable; using the backup of group {sb.group_nr}"
        )
    planner = ExtPlanner(vol, sb, from_backup)
    planner.plan_layout()
    descs = planner.read_descriptors()
    if descs is None and not from_backup:
        backup = find_backup_super(vol)
        if backup is not None:
            vol.plan.note(
                f"ext: primary group descriptors unreadable; using group {backup.group_nr}'s copy"
            )
            planner = ExtPlanner(vol, backup, True)
            planner.sb.blocks = sb.blocks
            descs = planner.read_descriptors()
    if descs is None:
        vol.plan.note("ext: no readable group descriptors")
        return
    planner.plan_groups(descs)
    planner.walk_inodes(descs)
