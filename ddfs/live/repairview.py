"""``--repair-view``: a backup's bytes served at the place of a lost primary (read-only).

When a primary structure is unreadable (bad in the map) or not rescued yet while its backup is
rescued, tools such as ntfs-3g and fsck.vfat give up without looking at the backup (see
``filesystem-metadata.md`` section 4). The repair view serves the backup in its place:

* NTFS: the boot sector from the volume's last sector; MFT records 0-3 from ``$MFTMirr``;
* FAT32: sectors 0, 1 and 2 (boot sector, FSInfo, third boot sector) from ``BkBootSec`` (6)
  onwards, one sector at a time;
* exFAT: the 12 sectors of the main boot region from the backup region (sectors 12-23);
* GPT: the header at LBA 1 from the backup header at the last LBA, rewritten as a primary
  (``my_lba`` 1, ``alternate_lba`` the last LBA, ``entries_lba`` 2, header CRC recomputed),
  and the entry array at LBA 2 from the backup's array.

:func:`find_substitutions` works out the candidates from what is rescued, with the engine's parsers
(:mod:`engine.metadata.partitions`, :mod:`engine.metadata`); :class:`RepairView` decides at each
read which of them are in effect: a substitution serves when its primary is not all finished and
its backup is. Nothing is ever written: the substitution exists only in what is served.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from engine.metadata import exfat, fat, ntfs
from engine.metadata.partitions import GPT_SIGNATURE, Partition
from engine.metadata.volume import Plan, Reader, Volume

SECTOR = 512
MFT_MIRRORED = 4  # $MFTMirr holds records 0-3
FAT32_COPIED = 3  # boot sector, FSInfo, third boot sector
EXFAT_REGION = 12  # sectors of an exFAT boot region
Finished = Callable[[int, int], bool]


@dataclass(frozen=True)
class Substitution:
    """Serve ``size`` bytes of the backup at ``backup`` in place of the primary at ``primary``.

    ``data``, when given, is what is served (a backup rewritten to be a valid primary).
    """

    what: str
    primary: int
    size: int
    backup: int
    data: bytes | None = None

    @property
    def primary_end(self) -> int:
        return self.primary + self.size


# ------------------------------------------------------------------ finding the candidates
def find_substitutions(
    read: Reader, disk_size: int, partitions: Iterable[Partition] = ()
) -> list[Substitution]:
    """The substitutions the rescued data makes possible, sorted by primary position.

    ``read`` answers only from rescued data (None elsewhere). Each partition is looked at as a
    volume; without partitions, the whole disk is (a bare filesystem).
    """
    subs = gpt_substitutions(read, disk_size)
    volumes = [(p.start, p.size, f"p{p.number}") for p in partitions] or [(0, disk_size, "disk")]
    for start, size, name in volumes:
        vol = Volume(read, start, size, Plan(disk_size))
        for finder in (ntfs_substitutions, fat32_substitutions, exfat_substitutions):
            found = finder(vol, name)
            if found:
                subs += found
                break
    unique: dict[int, Substitution] = {}
    for s in subs:
        unique.setdefault(s.primary, s)
    return sorted(unique.values(), key=lambda s: s.primary)


def ntfs_substitutions(vol: Volume, name: str) -> list[Substitution]:
    """The NTFS boot sector from the last sector, MFT records 0-3 from $MFTMirr."""
    boot = ntfs.parse_boot(vol.read(0, SECTOR))
    backup_pos = None
    if boot is None:
        for bps in (512, 4096, 1024, 2048):
            pos = vol.size - bps
            found = ntfs.parse_boot(vol.read(pos, SECTOR), pos) if pos > 0 else None
            # a whole disk whose table is unreadable may end with the backup of its last
            # partition: only a volume that spans the whole disk is taken for a bare one
            fits = found is not None and (
                found.total_sectors * bps == pos
                if name == "disk"
                else found.total_sectors * bps <= pos
            )
            if found is not None and found.bps == bps and fits:
                boot, backup_pos = found, pos
                break
    if boot is None:
        return []
    if backup_pos is None:
        backup_pos = vol.size - boot.bps
    s = vol.start
    subs = [Substitution(f"{name}: ntfs boot sector", s, boot.bps, s + backup_pos)]
    mft = s + boot.mft_lcn * boot.cluster
    mirror = s + boot.mirr_lcn * boot.cluster
    rs = boot.record_size
    for i in range(MFT_MIRRORED):
        subs.append(Substitution(f"{name}: ntfs MFT record {i}", mft + i * rs, rs, mirror + i * rs))
    return subs


def fat32_substitutions(vol: Volume, name: str) -> list[Substitution]:
    """FAT32 sectors 0-2 from the backup boot sectors (``BkBootSec``, normally 6)."""
    geo = fat.parse_boot(vol.read(0, SECTOR))
    if geo is None:
        for bps in fat.SECTOR_SIZES:
            found = fat.parse_boot(vol.read(fat.FAT32_BACKUP * bps, SECTOR))
            if found is not None and found.fat32 and found.bps == bps:
                geo = found
                break
    if geo is None or not geo.fat32:
        return []
    backup = geo.backup_boot if 0 < geo.backup_boot < geo.reserved else fat.FAT32_BACKUP
    if backup + FAT32_COPIED > geo.reserved:
        return []
    bps, s = geo.bps, vol.start
    names = ("boot sector", "FSInfo sector", "boot sector 2")
    return [
        Substitution(f"{name}: fat32 {names[i]}", s + i * bps, bps, s + (backup + i) * bps)
        for i in range(FAT32_COPIED)
    ]


def exfat_substitutions(vol: Volume, name: str) -> list[Substitution]:
    """The 12 sectors of the exFAT main boot region from the backup region."""
    geo = exfat.parse_boot(vol.read(0, SECTOR))
    if geo is None:
        for shift in exfat.SECTOR_SHIFTS:
            found = exfat.parse_boot(vol.read(EXFAT_REGION << shift, SECTOR))
            if found is not None and found.sector == 1 << shift:
                geo = found
                break
    if geo is None:
        return []
    sec, s = geo.sector, vol.start
    return [
        Substitution(
            f"{name}: exfat boot region sector {i}", s + i * sec, sec, s + (EXFAT_REGION + i) * sec
        )
        for i in range(EXFAT_REGION)
    ]


def gpt_substitutions(read: Reader, disk_size: int) -> list[Substitution]:
    """The GPT header (rewritten as a primary) and entry array from the backup at the disk end."""
    last = disk_size // SECTOR - 1
    if last < 67:
        return []
    hdr = read(last * SECTOR, SECTOR)
    if hdr is None or hdr[:8] != GPT_SIGNATURE:
        return []
    hsize, crc = struct.unpack_from("<II", hdr, 12)
    if not 92 <= hsize <= SECTOR or zlib.crc32(_zero_crc(hdr[:hsize])) != crc:
        return []
    my_lba, entries_lba, count, esize, ecrc = struct.unpack_from("<Q40xQIII", hdr, 24)
    if my_lba != last or esize < 128 or not 0 < count <= 4096:
        return []
    length = -(-count * esize // SECTOR) * SECTOR
    if 2 * SECTOR + length > entries_lba * SECTOR:
        return []  # the primary array would overlap the backup array
    entries = read(entries_lba * SECTOR, count * esize)
    if entries is None or zlib.crc32(entries) != ecrc:
        return []
    return [
        Substitution("gpt header", SECTOR, SECTOR, last * SECTOR, primary_gpt_header(hdr, last)),
        Substitution("gpt partition entries", 2 * SECTOR, length, entries_lba * SECTOR),
    ]


def _zero_crc(header: bytes) -> bytes:
    return header[:16] + b"\0\0\0\0" + header[20:]


def primary_gpt_header(backup: bytes, last_lba: int) -> bytes:
    """A backup GPT header rewritten as the primary: its LBAs swapped, entries at LBA 2, new CRC."""
    hsize = struct.unpack_from("<I", backup, 12)[0]
    hdr = bytearray(backup)
    struct.pack_into("<QQ", hdr, 24, 1, last_lba)  # my_lba, alternate_lba
    struct.pack_into("<Q", hdr, 72, 2)  # entries_lba
    struct.pack_into("<I", hdr, 16, 0)
    struct.pack_into("<I", hdr, 16, zlib.crc32(bytes(hdr[:hsize])))
    return bytes(hdr)


def backup_areas(disk_size: int, partitions: Iterable[Partition] = ()) -> list[tuple[int, int]]:
    """Where backups may be, to rescue early: each volume's FAT32 and exFAT backup sectors and
    last sector (NTFS), and the disk's backup GPT (as ``(pos, size)``)."""
    areas = [(max(0, disk_size - 33 * SECTOR), min(disk_size, 33 * SECTOR))]
    volumes = [(p.start, p.size) for p in partitions] + [(0, disk_size)]
    for start, size in volumes:
        if size >= 24 * SECTOR:
            areas.append((start + fat.FAT32_BACKUP * SECTOR, FAT32_COPIED * SECTOR))
            areas.append((start + EXFAT_REGION * SECTOR, EXFAT_REGION * SECTOR))
            areas.append((start + size - SECTOR, SECTOR))
    return sorted(set(areas))


# ------------------------------------------------------------------ at read time
class RepairView:
    """The candidates of a mount, and which of them serve."""

    def __init__(self, finished: Finished) -> None:
        self.finished = finished
        self.candidates: list[Substitution] = []
        self.served: dict[Substitution, int] = {}
        self.refreshes = 0
        self._lock = threading.Lock()

    def refresh(
        self, read: Reader, disk_size: int, partitions: Iterable[Partition] = ()
    ) -> list[Substitution]:
        """Work the candidates out again from what is rescued now (blocking: preads)."""
        found = find_substitutions(read, disk_size, list(partitions))
        with self._lock:
            self.candidates = found
            self.refreshes += 1
        return found

    def wanted(self) -> list[tuple[int, int]]:
        """The backups of the candidates that are not rescued yet, as ``(pos, size)``."""
        with self._lock:
            subs = list(self.candidates)
        return [(s.backup, s.size) for s in subs if not self.finished(s.backup, s.size)]

    def active(self, sub: Substitution) -> bool:
        """Whether ``sub`` serves: its primary is not all rescued and its backup is."""
        return not self.finished(sub.primary, sub.size) and self.finished(sub.backup, sub.size)

    def split(self, pos: int, size: int) -> list[tuple[int, int, Substitution | None]]:
        """``[pos, pos+size)`` cut into runs served by a substitution or not (None)."""
        end = pos + size
        with self._lock:
            subs = [s for s in self.candidates if s.primary < end and pos < s.primary_end]
        out: list[tuple[int, int, Substitution | None]] = []
        cur = pos
        for sub in subs:
            if not self.active(sub):
                continue
            lo, hi = max(sub.primary, cur), min(sub.primary_end, end)
            if hi <= lo:
                continue
            if lo > cur:
                out.append((cur, lo - cur, None))
            out.append((lo, hi - lo, sub))
            cur = hi
        if cur < end:
            out.append((cur, end - cur, None))
        return out

    def counts(self) -> tuple[int, int]:
        """How many substitutions serve now, and how many candidates there are."""
        with self._lock:
            subs = list(self.candidates)
        return sum(1 for s in subs if self.active(s)), len(subs)

    def note_served(self, sub: Substitution) -> None:
        with self._lock:
            self.served[sub] = self.served.get(sub, 0) + 1

    def status(self) -> dict[str, object]:
        """The repair view for ``status.json``: every candidate and what it does now."""
        with self._lock:
            subs = list(self.candidates)
            served = dict(self.served)
        out = []
        for s in subs:
            if self.finished(s.primary, s.size):
                state = "standby: the primary is rescued"
            elif self.finished(s.backup, s.size):
                state = "serving"
            else:
                state = "waiting: the backup is not rescued"
            out.append(
                {
                    "what": s.what,
                    "primary": {"pos": s.primary, "size": s.size},
                    "backup": {"pos": s.backup, "size": s.size},
                    "rewritten": s.data is not None,
                    "state": state,
                    "reads_served": served.get(s, 0),
                }
            )
        return {"refreshes": self.refreshes, "substitutions": out}
