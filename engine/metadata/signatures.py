"""Where each filesystem module looks for its boot sector or superblock, and the cheap test the
planner makes before it imports the module: :data:`SIGNATURES`.

A signature test reads what the module's ``probe`` reads when both find nothing, in the same
order (so a volume that matches no filesystem costs no extra reads of a failing disk), and looks
only at the magic bytes ``probe`` requires. It is a necessary condition: ``probe(vol)`` is never
True when the test is False (``tests/test_metadata_signatures.py`` checks both facts), so the
planner skips the module, and the start-up of importing it, without changing any plan. The
constants are kept here, and the modules import them, so that the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol


class Readable(Protocol):
    """What a test reads through: a :class:`engine.metadata.volume.Volume`."""

    size: int

    def read(self, pos: int, size: int) -> bytes | None: ...


# ------------------------------------------------------------------ ext2/3/4
EXT_MAGIC = 0xEF53  # s_magic, at byte 56 of the superblock
EXT_SB_OFFSET = 1024
EXT_SB_SIZE = 1024


def ext_backup_offsets() -> Iterator[int]:
    """Where backup superblocks are for each block size (groups 1, 3, 5, 7, 9, 25, 27, 49, 81)."""
    for bs in (1024, 2048, 4096):
        bpg = 8 * bs
        first = 1 if bs == 1024 else 0
        for group in (1, 3, 5, 7, 9, 25, 27, 49, 81):
            yield (group * bpg + first) * bs


def _ext_magic(raw: bytes | None) -> bool:
    return raw is not None and len(raw) >= EXT_SB_SIZE and raw[56:58] == b"\x53\xef"


def ext(vol: Readable) -> bool:
    """The ext magic in the superblock, or in one of the backups ``probe`` looks at."""
    if _ext_magic(vol.read(EXT_SB_OFFSET, EXT_SB_SIZE)):
        return True
    for off in ext_backup_offsets():
        if off + EXT_SB_SIZE <= vol.size and _ext_magic(vol.read(off, EXT_SB_SIZE)):
            return True
    return False


# ------------------------------------------------------------------ NTFS
NTFS_OEM_ID = b"NTFS    "
NTFS_BACKUP_SECTORS = (512, 4096, 1024, 2048)  # the last sector of the volume, of each size


def ntfs(vol: Readable) -> bool:
    """The OEM id in sector 0; else, with sector 0 unreadable or blank, in a backup."""
    first = vol.read(0, 512)
    if first is not None and first[3:11] == NTFS_OEM_ID:
        return True
    if first is not None and any(first):
        return False
    for bps in NTFS_BACKUP_SECTORS:
        pos = vol.size - bps
        if pos > 0:
            raw = vol.read(pos, 512)
            if raw is not None and raw[3:11] == NTFS_OEM_ID:
                return True
    return False


# ------------------------------------------------------------------ exFAT
EXFAT_SIGNATURE = b"EXFAT   "
EXFAT_MIN_SECTOR = 512
EXFAT_REGION = 12  # sectors of a boot region; the backup region follows the main one
EXFAT_SECTOR_SHIFTS = (9, 12, 10, 11)  # 512, 4096, 1024, 2048: the order backups are looked for


def exfat_other_boot_sector(raw: bytes | None) -> bool:
    """A readable, signed boot sector of something else (no backup to look for then)."""
    return raw is not None and raw[510:512] == b"\x55\xaa" and raw[3:11] != EXFAT_SIGNATURE


def exfat(vol: Readable) -> bool:
    """The exFAT signature in sector 0 or in a backup boot region."""
    raw = vol.read(0, EXFAT_MIN_SECTOR)
    if raw is not None and raw[3:11] == EXFAT_SIGNATURE:
        return True
    if exfat_other_boot_sector(raw):
        return False
    for shift in EXFAT_SECTOR_SHIFTS:
        raw = vol.read(EXFAT_REGION << shift, EXFAT_MIN_SECTOR)
        if raw is not None and raw[3:11] == EXFAT_SIGNATURE:
            return True
    return False


# ------------------------------------------------------------------ FAT12/16/32
FAT_SECTOR_SIZES = (512, 4096, 1024, 2048)  # the order in which backups are looked for
FAT_MIN_SECTOR = 512
FAT32_BACKUP = 6  # the usual BkBootSec (the backup is only found there without the primary)


def fat_boot_signed(raw: bytes | None) -> bool:
    """A 0x55AA-signed sector starting with a jump, as every FAT formatter writes."""
    return (
        raw is not None
        and len(raw) >= FAT_MIN_SECTOR
        and raw[510:512] == b"\x55\xaa"
        and raw[0] in (0xEB, 0xE9)
    )


def fat(vol: Readable) -> bool:
    """A signed boot sector with a jump at sector 0, or at a FAT32 backup."""
    if fat_boot_signed(vol.read(0, FAT_MIN_SECTOR)):
        return True
    return any(
        fat_boot_signed(vol.read(FAT32_BACKUP * bps, FAT_MIN_SECTOR)) for bps in FAT_SECTOR_SIZES
    )


# ------------------------------------------------------------------ XFS
XFS_MAGIC = b"XFSB"
#: AG counts mkfs.xfs picks (4 for most sizes, more on big or striped volumes): where AG 1's
#: secondary superblock is looked for when sector 0 cannot be read
XFS_AG_COUNTS = (4, 8, 16, 32, 2, 64)


def xfs_secondary_offsets(size: int) -> Iterator[int]:
    """Candidate offsets of AG 1's superblock: the volume split into the usual AG counts
    (AG sizes are whole 4 KiB blocks; mkfs rounds the last AG, not the first)."""
    seen = set()
    for count in XFS_AG_COUNTS:
        for block in (4096, 512):
            ag = -(-size // count // block) * block
            for off in (ag, size // count // block * block):
                if 0 < off < size and off not in seen:
                    seen.add(off)
                    yield off


def xfs(vol: Readable) -> bool:
    """The XFS magic in sector 0; else, with sector 0 unreadable, in AG 1's superblock."""
    first = vol.read(0, 512)
    if first is not None:
        return first[:4] == XFS_MAGIC
    for off in xfs_secondary_offsets(vol.size):
        raw = vol.read(off, 512)
        if raw is not None and raw[:4] == XFS_MAGIC:
            return True
    return False


# ------------------------------------------------------------------ btrfs
BTRFS_MAGIC = b"_BHRfS_M"  # at byte 0x40 of each superblock copy
BTRFS_SUPER_OFFSETS = (64 << 10, 64 << 20, 256 << 30)  # the primary and its mirrors
BTRFS_SUPER_SIZE = 4096


def btrfs(vol: Readable) -> bool:
    """The btrfs magic in the superblock or in one of its mirrors."""
    for off in BTRFS_SUPER_OFFSETS:
        if off + BTRFS_SUPER_SIZE <= vol.size:
            raw = vol.read(off, BTRFS_SUPER_SIZE)
            if raw is not None and raw[0x40:0x48] == BTRFS_MAGIC:
                return True
    return False


# ------------------------------------------------------------------ LUKS1 / LUKS2
LUKS_MAGIC = b"LUKS\xba\xbe"  # the (first) binary header
LUKS2_SECOND_MAGIC = b"SKUL\xba\xbe"  # LUKS2's second binary header
#: where LUKS2's second header may be: the sizes of its header area (16 KiB to 4 MiB)
LUKS2_SECOND_OFFSETS = tuple(16384 << i for i in range(9))


def luks(vol: Readable) -> bool:
    """The LUKS magic at 0, or LUKS2's second header at one of its possible offsets."""
    first = vol.read(0, 512)
    if first is not None and first[:6] == LUKS_MAGIC:
        return True
    for off in LUKS2_SECOND_OFFSETS:
        if off + 512 <= vol.size:
            raw = vol.read(off, 512)
            if raw is not None and raw[:6] == LUKS2_SECOND_MAGIC:
                return True
    return False


# ------------------------------------------------------------------ LVM2 physical volumes
LVM_LABEL = b"LABELONE"  # in one of the first four sectors
LVM_TYPE = b"LVM2 001"  # at byte 24 of the label
LVM_LABEL_SECTORS = 4


def lvm(vol: Readable) -> bool:
    """An LVM2 label in one of the first four sectors."""
    raw = vol.read(0, 512 * LVM_LABEL_SECTORS)
    if raw is None:
        return False
    return any(
        raw[s * 512 : s * 512 + 8] == LVM_LABEL and raw[s * 512 + 24 : s * 512 + 32] == LVM_TYPE
        for s in range(LVM_LABEL_SECTORS)
    )


#: filesystem name -> (the module that plans it, its signature test), probed in this order. An
#: LVM2 label settles what a volume is (and costs one read at its start), so it goes first:
#: a stray backup superblock inside a PV must not claim it.
SIGNATURES: dict[str, tuple[str, Callable[[Readable], bool]]] = {
    "lvm": ("engine.metadata.lvm", lvm),
    "ext": ("engine.metadata.ext", ext),
    "ntfs": ("engine.metadata.ntfs", ntfs),
    "exfat": ("engine.metadata.exfat", exfat),
    "fat": ("engine.metadata.fat", fat),
    "xfs": ("engine.metadata.xfs", xfs),
    "btrfs": ("engine.metadata.btrfs", btrfs),
    "luks": ("engine.metadata.luks", luks),
}
