"""ext2/3/4 superblocks and group descriptors, for the planner (:mod:`engine.metadata.ext`) and
``ddfs report``: the superblock's fields and its backups, and the descriptors with their
checksums. A descriptor whose checksum fails (``uninit_bg``: CRC-16, ``metadata_csum``: CRC-32C)
is used without its UNINIT flags and ``itable_unused``, as are the descriptors of a backup GDT
(libext2fs never trusts those): the planner then takes its bitmaps and inode table whole.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from engine.metadata.checksums import crc16, crc32c
from engine.metadata.signatures import EXT_MAGIC as MAGIC
from engine.metadata.signatures import EXT_SB_OFFSET as SB_OFFSET
from engine.metadata.signatures import ext_backup_offsets
from engine.metadata.volume import Volume

__all__ = ["MAGIC", "SB_OFFSET"]

# features
COMPAT_JOURNAL, COMPAT_SPARSE_SUPER2 = 0x4, 0x200
INCOMPAT_META_BG, INCOMPAT_64BIT, INCOMPAT_CSUM_SEED = 0x10, 0x80, 0x2000
RO_SPARSE_SUPER, RO_GDT_CSUM, RO_METADATA_CSUM = 0x1, 0x10, 0x400
# group descriptor flags
BG_INODE_UNINIT, BG_BLOCK_UNINIT = 0x1, 0x2
DESC_CSUM_OFFSET = 0x1E  # bg_checksum


@dataclass
class Super:
    """The fields of a superblock the planner needs."""

    offset: int  # where it was read (volume offset)
    bs: int
    first_data_block: int
    blocks: int
    bpg: int
    ipg: int
    inode_size: int
    group_nr: int
    compat: int
    incompat: int
    ro_compat: int
    reserved_gdt: int
    journal_inum: int
    desc_size: int
    first_meta_bg: int
    backup_bgs: tuple[int, int]
    uuid: bytes = bytes(16)
    checksum_seed: int = 0  # s_checksum_seed (used with INCOMPAT_CSUM_SEED)

    @property
    def csum_seed(self) -> int:
        """The seed of ``metadata_csum`` checksums (the kernel's ``s_csum_seed``)."""
        if self.incompat & INCOMPAT_CSUM_SEED:
            return self.checksum_seed
        return crc32c(0xFFFFFFFF, self.uuid)

    @property
    def groups(self) -> int:
        return -(-(self.blocks - self.first_data_block) // self.bpg)

    @property
    def csum(self) -> bool:
        return bool(self.ro_compat & (RO_GDT_CSUM | RO_METADATA_CSUM))

    def has_super(self, group: int) -> bool:
        """libext2fs ``ext2fs_bg_has_super``."""
        if group == 0:
            return True
        if self.compat & COMPAT_SPARSE_SUPER2:
            return group in self.backup_bgs
        if group <= 1 or not self.ro_compat & RO_SPARSE_SUPER:
            return True
        if group % 2 == 0:
            return False
        for base in (3, 5, 7):
            g = group
            while g % base == 0:
                g //= base
            if g == 1:
                return True
        return False


def parse_super(raw: bytes, offset: int) -> Super | None:
    """A validated superblock, or None."""
    if len(raw) < 1024 or struct.unpack_from("<H", raw, 56)[0] != MAGIC:
        return None
    (inodes, blocks_lo, _r, _f, _fi, first_data, log_bs, _lc, bpg, _cpg, ipg) = struct.unpack_from(
        "<11I", raw, 0
    )
    rev = struct.unpack_from("<I", raw, 76)[0]
    inode_size = struct.unpack_from("<H", raw, 88)[0] if rev >= 1 else 128
    group_nr = struct.unpack_from("<H", raw, 90)[0]
    compat, incompat, ro_compat = struct.unpack_from("<3I", raw, 92)
    reserved_gdt = struct.unpack_from("<H", raw, 206)[0]
    journal_inum = struct.unpack_from("<I", raw, 224)[0]
    desc_size = struct.unpack_from("<H", raw, 254)[0]
    first_meta_bg = struct.unpack_from("<I", raw, 260)[0]
    blocks_hi = struct.unpack_from("<I", raw, 336)[0]
    backup_bgs = struct.unpack_from("<2I", raw, 0x24C)
    if log_bs > 6 or not bpg or not ipg or bpg > 8 * (1024 << log_bs):
        return None
    if inode_size < 128 or inode_size & (inode_size - 1) or inode_size > (1024 << log_bs):
        return None
    if first_data not in (0, 1) or inodes == 0:
        return None
    blocks = blocks_lo | (blocks_hi << 32 if incompat & INCOMPAT_64BIT else 0)
    desc = desc_size if incompat & INCOMPAT_64BIT and desc_size >= 32 else 32
    return Super(
        offset,
        1024 << log_bs,
        first_data,
        blocks,
        bpg,
        ipg,
        inode_size,
        group_nr,
        compat,
        incompat,
        ro_compat,
        reserved_gdt,
        journal_inum,
        desc,
        first_meta_bg,
        (backup_bgs[0], backup_bgs[1]),
        bytes(raw[0x68:0x78]),
        struct.unpack_from("<I", raw, 0x270)[0],
    )


def find_backup_super(vol: Volume) -> Super | None:
    """The first valid backup superblock that sits exactly where its own fields say."""
    for off in ext_backup_offsets():
        if off + 1024 > vol.size:
            continue
        raw = vol.read(off, 1024)
        sb = parse_super(raw, off) if raw is not None else None
        if (
            sb is not None
            and sb.group_nr > 0
            and off == (sb.group_nr * sb.bpg + sb.first_data_block) * sb.bs
        ):
            return sb
    return None


@dataclass
class Desc:
    block_bitmap: int
    inode_bitmap: int
    inode_table: int
    flags: int
    itable_unused: int


def parse_desc(sb: Super, raw: bytes, off: int, group: int, trusted: bool) -> Desc:
    """The descriptor of ``group`` at ``raw[off:]``. Its UNINIT flags and ``itable_unused`` are
    kept only when ``trusted`` (a primary GDT) and, on a checksummed filesystem, when its
    checksum holds."""
    bb, ib, it = struct.unpack_from("<3I", raw, off)
    flags = struct.unpack_from("<H", raw, off + 18)[0]
    unused = struct.unpack_from("<H", raw, off + 28)[0]
    if sb.desc_size >= 64:
        bbh, ibh, ith = struct.unpack_from("<3I", raw, off + 32)
        bb, ib, it = bb | bbh << 32, ib | ibh << 32, it | ith << 32
        unused |= struct.unpack_from("<H", raw, off + 50)[0] << 16
    if not trusted or (sb.csum and not desc_checksum_ok(sb, raw[off : off + sb.desc_size], group)):
        flags, unused = 0, 0
    return Desc(bb, ib, it, flags, unused)


def desc_checksum_ok(sb: Super, desc: bytes, group: int) -> bool:
    """Whether ``bg_checksum`` holds (ext4's ``ext4_group_desc_csum``)."""
    (stored,) = struct.unpack_from("<H", desc, DESC_CSUM_OFFSET)
    le_group = struct.pack("<I", group)
    rest = desc[DESC_CSUM_OFFSET + 2 :]
    if sb.ro_compat & RO_METADATA_CSUM:
        crc = crc32c(sb.csum_seed, le_group)
        crc = crc32c(crc, desc[:DESC_CSUM_OFFSET])
        crc = crc32c(crc, b"\0\0")
        crc = crc32c(crc, rest)
        return crc & 0xFFFF == stored
    crc = crc16(0xFFFF, sb.uuid)
    crc = crc16(crc, le_group)
    crc = crc16(crc, desc[:DESC_CSUM_OFFSET])
    if sb.incompat & INCOMPAT_64BIT:
        crc = crc16(crc, rest)
    return crc == stored
