"""ext2/3/4 for the damage report: every in-use inode's blocks, every directory's names, and the
filesystem's own structures, read only from finished bytes.

The inode tables are scanned as e2fsck's pass 1 does (not only the tree from the root), so a
file is found even when the directory naming it is lost. Names come from every readable
directory block; a directory's ``..`` entry gives its parent even when the block of the
parent that names it is lost, so a path is rebuilt with a placeholder (``<dir inode N>``) only
for the component whose name is really gone. An inode in an unreadable part of an inode table
is reported as an unknown extent when its bitmap bit (or a directory entry) says it is in use;
an unreadable extent-tree or indirect block makes its file's extent partial.

The superblock, descriptor and geometry parsing is :mod:`engine.metadata.ext`'s.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from engine.damage.model import (
    DIRECTORY,
    FILE,
    OTHER,
    PARTIAL,
    SYMLINK,
    UNKNOWN,
    Entry,
    VolumeReport,
    path_of,
)
from engine.metadata import ext as meta
from engine.metadata.volume import Volume

NAME = "ext"
READ_CHUNK = 64 * 1024
FIRST_USER_INO = 11
UNINIT_EXTENT = 32768
FT_NAMES = {1: FILE, 2: DIRECTORY, 7: SYMLINK}


def probe(vol: Volume) -> bool:
    return meta.probe(vol)


@dataclass
class Inode:
    """What the report keeps of one in-use inode."""

    ino: int
    kind: str
    size: int
    runs: list[tuple[int, int, int]] = field(default_factory=list)  # logical, physical, count
    tree: list[tuple[str, int]] = field(default_factory=list)  # (what, block) of its metadata
    lost: list[str] = field(default_factory=list)  # unreadable parts of its block list
    inline: bytes = b""


def _dirents(data: bytes) -> Iterator[tuple[int, str, int]]:
    """``(inode, name, file type)`` of the live entries of a directory block."""
    pos = 0
    while pos + 8 <= len(data):
        ino, rec_len, name_len, ftype = struct.unpack_from("<IHBB", data, pos)
        if rec_len < 8 or rec_len % 4 or pos + rec_len > len(data):
            return
        if ino and name_len and 8 + name_len <= rec_len:
            raw = data[pos + 8 : pos + 8 + name_len]
            yield ino, raw.decode("utf-8", "backslashreplace"), ftype
        pos += rec_len


class ExtScan:
    """One scan of one ext volume."""

    def __init__(self, vol: Volume, sb: meta.Super, from_backup: bool, out: VolumeReport):
        self.vol = vol
        self.sb = sb
        self.bs = sb.bs
        self.out = out
        self.layout = meta.ExtPlanner(vol, sb, from_backup)
        self.inodes: dict[int, Inode] = {}
        self.unknown: dict[int, str] = {}  # in-use inodes that could not be read -> why
        self.maybe: dict[int, str] = {}  # unreadable inodes, in use or not (bitmap lost)
        self.names: dict[int, tuple[int | None, str]] = {}
        self.dotdot: dict[int, int] = {}
        self.ftypes: dict[int, int] = {}

    def abs(self, block: int) -> int:
        return self.vol.start + block * self.bs

    # -------------------------------------------------------------- layout
    def structures(self, descs: list[meta.Desc]) -> None:
        sb, bs, out, lay = self.sb, self.bs, self.out, self.layout
        out.meta("superblock", self.vol.start + meta.SB_OFFSET, 1024)
        ngdt = lay.gdt_blocks()
        nflat = min(ngdt, sb.first_meta_bg) if sb.incompat & meta.INCOMPAT_META_BG else ngdt
        for g in range(sb.groups):
            if not sb.has_super(g):
                continue
            start = lay.group_start(g)
            if g:
                out.meta(f"backup superblock (group {g})", self.abs(start), 1024)
            where = "" if g == 0 else f" (backup in group {g})"
            out.meta(f"group descriptors{where}", self.abs(start + 1), nflat * bs)
            out.meta(
                f"reserved GDT blocks{where}", self.abs(start + 1 + nflat), sb.reserved_gdt * bs
            )
        for i in range(nflat, ngdt):
            out.meta(
                f"group descriptor block {i} (meta_bg)", self.abs(lay.gdt_block_location(i, 0)), bs
            )
        for g, d in enumerate(descs):
            out.meta(f"block bitmap of group {g}", self.abs(d.block_bitmap), bs)
            out.meta(f"inode bitmap of group {g}", self.abs(d.inode_bitmap), bs)
            out.meta(f"inode table of group {g}", self.abs(d.inode_table), sb.ipg * sb.inode_size)

    # -------------------------------------------------------------- inodes
    def bitmap(self, d: meta.Desc) -> bytes | None:
        if self.sb.csum and d.flags & meta.BG_INODE_UNINIT:
            return bytes(self.bs)
        return self.vol.read(d.inode_bitmap * self.bs, self.bs)

    def scan_inodes(self, descs: list[meta.Desc]) -> None:
        sb, bs = self.sb, self.bs
        per_block = bs // sb.inode_size
        for g, d in enumerate(descs):
            if sb.csum and d.flags & meta.BG_INODE_UNINIT:
                continue
            used = sb.ipg - d.itable_unused if sb.csum else sb.ipg
            bitmap = self.bitmap(d)
            if bitmap is None:
                self.out.notes.append(f"inode bitmap of group {g} unreadable")
            nbytes = max(0, used) * sb.inode_size
            base = d.inode_table * bs
            for off in range(0, nbytes, READ_CHUNK):
                size = min(READ_CHUNK, nbytes - off)
                raw = self.vol.read(base + off, size)
                for boff in range(0, size, bs):
                    block = (
                        raw[boff : boff + bs]
                        if raw is not None
                        else self.vol.read(base + off + boff, min(bs, size - boff))
                    )
                    first = g * sb.ipg + (off + boff) // sb.inode_size + 1
                    if block is None:
                        self.lost_block(g, first, per_block, bitmap)
                        continue
                    for k in range(0, len(block), sb.inode_size):
                        ino = first + k // sb.inode_size
                        if bitmap is not None and not self.bit(bitmap, ino - g * sb.ipg - 1):
                            continue
                        self.inode(ino, block[k : k + sb.inode_size])

    @staticmethod
    def bit(bitmap: bytes, i: int) -> bool:
        return bool(bitmap[i // 8] >> (i % 8) & 1) if i // 8 < len(bitmap) else False

    def lost_block(self, g: int, first: int, count: int, bitmap: bytes | None) -> None:
        why = f"inode unreadable (inode table of group {g})"
        for ino in range(first, first + count):
            if ino < FIRST_USER_INO and ino != meta.ROOT_INO:
                continue
            if bitmap is None:
                self.maybe[ino] = why
            elif self.bit(bitmap, ino - g * self.sb.ipg - 1):
                self.unknown[ino] = why

    def inode(self, ino: int, raw: bytes) -> None:
        mode, _uid, size_lo, _a, _c, _m, dtime, _gid, links = struct.unpack_from("<HHIIIIIHH", raw)
        if mode == 0 or (ino >= FIRST_USER_INO and (links == 0 or dtime)):
            return
        fmt = mode & meta.S_IFMT
        kind = {meta.S_IFDIR: DIRECTORY, meta.S_IFREG: FILE, meta.S_IFLNK: SYMLINK}.get(fmt, OTHER)
        (flags,) = struct.unpack_from("<I", raw, 32)
        size = size_lo | struct.unpack_from("<I", raw, 108)[0] << 32
        node = Inode(ino, kind, size)
        acl = struct.unpack_from("<I", raw, 104)[0] | struct.unpack_from("<H", raw, 118)[0] << 32
        if acl and acl < self.sb.blocks:
            node.tree.append(("xattr block", acl))
        i_block = raw[40:100]
        if flags & meta.INLINE_DATA_FL:
            node.inline = i_block
        elif kind == SYMLINK and size < 60 and not flags & meta.EXTENTS_FL:
            pass  # a fast symlink: the target is in the inode
        elif flags & meta.EXTENTS_FL:
            self.extents(node, i_block, 0, None, 8)
        elif fmt in (meta.S_IFDIR, meta.S_IFREG, meta.S_IFLNK):
            self.blockmap(node, i_block)
        self.inodes[ino] = node

    # -------------------------------------------------------------- block lists
    def extents(self, node: Inode, data: bytes, lfirst: int, lend: int | None, left: int) -> None:
        """The runs of an extent (sub)tree covering logical blocks ``[lfirst, lend)``."""
        magic, entries, _max, depth = struct.unpack_from("<4H", data, 0)
        if magic != meta.EXTENT_MAGIC or 12 + 12 * entries > len(data) or left <= 0:
            node.lost.append(f"invalid extent node (logical blocks from {lfirst})")
            return
        for e in range(entries):
            off = 12 + 12 * e
            if depth == 0:
                lblk, length, hi, lo = struct.unpack_from("<IHHI", data, off)
                if length > UNINIT_EXTENT:
                    continue  # unwritten: reads as zeros whatever the disk holds
                if length:
                    node.runs.append((lblk, hi << 32 | lo, length))
                continue
            lblk, lo, hi = struct.unpack_from("<IIH", data, off)
            nxt = struct.unpack_from("<I", data, off + 12)[0] if e + 1 < entries else lend
            child = hi << 32 | lo
            if not 0 < child < self.sb.blocks:
                node.lost.append(f"invalid extent index (logical blocks from {lblk})")
                continue
            node.tree.append(("extent tree block", child))
            sub = self.vol.read(child * self.bs, self.bs)
            if sub is None:
                span = f"{lblk}-{nxt - 1}" if nxt is not None else f"{lblk}-"
                node.lost.append(f"extent tree block {child} unreadable (logical blocks {span})")
                continue
            self.extents(node, sub, lblk, nxt, left - 1)

    def blockmap(self, node: Inode, i_block: bytes) -> None:
        ptrs = struct.unpack_from("<15I", i_block, 0)
        per = self.bs // 4
        for i, p in enumerate(ptrs[:12]):
            if p:
                self.add_run(node, i, p)
        base = 12
        for level, p in ((1, ptrs[12]), (2, ptrs[13]), (3, ptrs[14])):
            if p:
                self.indirect(node, p, level, base)
            base += per**level

    def indirect(self, node: Inode, blk: int, level: int, lbase: int) -> None:
        per = self.bs // 4
        if lbase * self.bs >= max(node.size, 1) and node.kind != DIRECTORY:
            return
        if not 0 < blk < self.sb.blocks:
            node.lost.append(f"invalid indirect block pointer {blk}")
            return
        node.tree.append(("indirect block", blk))
        raw = self.vol.read(blk * self.bs, self.bs)
        if raw is None:
            last = lbase + per**level - 1
            node.lost.append(f"indirect block {blk} unreadable (logical blocks {lbase}-{last})")
            return
        for j, p in enumerate(struct.unpack_from(f"<{per}I", raw, 0)):
            if not p:
                continue
            if level == 1:
                self.add_run(node, lbase + j, p)
            else:
                self.indirect(node, p, level - 1, lbase + j * per ** (level - 1))

    @staticmethod
    def add_run(node: Inode, lblk: int, pblk: int) -> None:
        if node.runs and node.runs[-1][0] + node.runs[-1][2] == lblk:
            last = node.runs[-1]
            if last[1] + last[2] == pblk:
                node.runs[-1] = (last[0], last[1], last[2] + 1)
                return
        node.runs.append((lblk, pblk, 1))

    def spans(self, node: Inode) -> list[tuple[int, int]]:
        """Absolute disk ranges of the inode's content, clipped to its size."""
        out = []
        bs = self.bs
        for lblk, pblk, n in node.runs:
            lo, hi = lblk * bs, min((lblk + n) * bs, node.size)
            if hi > lo and pblk + n <= self.sb.blocks:
                out.append((self.abs(pblk) + lo - lblk * bs, self.abs(pblk) + hi - lblk * bs))
        return out

    # -------------------------------------------------------------- names
    def read_directories(self) -> None:
        for node in self.inodes.values():
            if node.kind != DIRECTORY:
                continue
            if node.inline:
                parent = struct.unpack_from("<I", node.inline, 0)[0]
                self.dotdot[node.ino] = parent
                self.listing(node.ino, node.inline[4:])
                continue
            lost = 0
            for start, end in self.spans(node):
                for pos in range(start, end, self.bs):
                    data = self.vol.read(pos - self.vol.start, min(self.bs, end - pos))
                    if data is None:
                        lost += 1
                    else:
                        self.listing(node.ino, data)
            if lost:
                self.out.notes.append(
                    f"directory inode {node.ino}: {lost} block(s) unreadable, names in them lost"
                )

    def listing(self, dir_ino: int, data: bytes) -> None:
        for ino, name, ftype in _dirents(data):
            if name == ".":
                continue
            if name == "..":
                self.dotdot[dir_ino] = ino
                continue
            self.ftypes.setdefault(ino, ftype)
            self.names.setdefault(ino, (dir_ino, name))

    def placeholder(self, ino: int) -> str:
        node = self.inodes.get(ino)
        is_dir = node.kind == DIRECTORY if node else self.ftypes.get(ino) == 2
        return f"<dir inode {ino}>" if is_dir else f"<inode {ino}>"

    # -------------------------------------------------------------- report
    def entries(self) -> None:
        out = self.out
        names = dict(self.names)
        for d, parent in self.dotdot.items():
            if d not in names and d != meta.ROOT_INO:
                names[d] = (parent, "")

        def path(ino: int) -> tuple[str, bool]:
            return path_of(ino, names, meta.ROOT_INO, self.placeholder)

        special = {meta.JOURNAL_INO, self.sb.journal_inum}
        for ino, node in self.inodes.items():
            spans = self.spans(node)
            if ino in special:
                for s, e in spans:
                    out.meta("journal", s, e - s)
                continue
            if ino < FIRST_USER_INO and ino != meta.ROOT_INO:
                if ino != meta.RESIZE_INO:  # the resize inode's blocks are the reserved GDT
                    for s, e in spans:
                        out.meta(f"special inode {ino}", s, e - s)
                continue
            p, lost = path(ino)
            for what, blk in node.tree:
                out.meta(f"{what} of inode {ino} ({p})", self.abs(blk), self.bs)
            entry = Entry(f"inode {ino}", node.kind, node.size, spans, path=p, name_lost=lost)
            if node.lost:
                entry.extent, entry.reason = PARTIAL, "; ".join(node.lost)
            out.entries.append(entry)
        referenced = set(self.names)
        for ino, why in {
            **{i: w for i, w in self.maybe.items() if i in referenced},
            **self.unknown,
        }.items():
            kind = FT_NAMES.get(self.ftypes.get(ino, 0), OTHER)
            if ino == meta.ROOT_INO:
                kind = DIRECTORY
            p, lost = path(ino)
            out.entries.append(Entry(f"inode {ino}", kind, None, [], UNKNOWN, why, p, lost))


def _superblock(vol: Volume, out: VolumeReport) -> tuple[meta.Super, bool] | None:
    raw = vol.read(meta.SB_OFFSET, 1024)
    sb = meta.parse_super(raw, meta.SB_OFFSET) if raw is not None else None
    if sb is not None:
        return sb, False
    backup = meta.find_backup_super(vol)
    if backup is None:
        out.notes.append("no readable superblock: nothing of this filesystem is known")
        return None
    out.notes.append(f"primary superblock unreadable; using the backup of group {backup.group_nr}")
    return backup, True


def scan(vol: Volume) -> VolumeReport:
    """The entries and structures of the ext filesystem on ``vol``."""
    out = VolumeReport(NAME)
    found = _superblock(vol, out)
    if found is None:
        return out
    sb, from_backup = found
    walk = ExtScan(vol, sb, from_backup, out)
    descs = walk.layout.read_descriptors()
    if descs is None and not from_backup:
        backup = meta.find_backup_super(vol)
        if backup is not None:
            out.notes.append(
                f"primary group descriptors unreadable; using group {backup.group_nr}'s copy"
            )
            backup.blocks = sb.blocks
            walk = ExtScan(vol, backup, True, out)
            descs = walk.layout.read_descriptors()
    if descs is None:
        walk.structures([])
        out.notes.append("no readable group descriptors: no inode can be found")
        return out
    walk.structures(descs)
    walk.scan_inodes(descs)
    walk.read_directories()
    walk.entries()
    return out
