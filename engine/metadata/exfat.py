"""exFAT: where the metadata of an exFAT filesystem lives, found by walking it.

The chain (Microsoft's exFAT specification; what ``fsck.exfat -n`` reads, measured):

* sectors 0-11 are the main boot region (boot sector, 8 extended boot sectors, OEM
  parameters, a reserved sector and the boot checksum sector), 12-23 the backup region;
* the boot sector gives the FAT (``FatOffset``, ``FatLength``, ``NumberOfFats``: 2 only with
  TexFAT, ``VolumeFlags`` bit 0 names the active one), the cluster heap and the root directory
  cluster; the root directory is always FAT-chained;
* the root holds the allocation bitmap (0x81) and the up-case table (0x82); file entry sets
  (0x85 file, 0xC0 stream extension, 0xC1 names) lead to subdirectories (walked) and files.
  A stream with ``NoFatChain`` is a contiguous run of ``ceil(DataLength / cluster)`` clusters,
  otherwise its clusters are chained in the FAT.

Tiers: P0 the main boot region; P1 the active FAT (its used part), the root directory and the
allocation bitmap; P2 the up-case table and every other directory; P3 the backup boot region,
the second FAT and second bitmap (TexFAT); P4 the clusters of regular files.

Validation: the boot region checksum (sector 11), the boot sector's fields, each entry set's
checksum. Fallbacks: the backup boot region when the main one is unreadable or fails its
checksum (and a lone sane boot sector when neither region checks); the other FAT copy, when
there is one, for unreadable FAT chunks. Counts: ``exfat:directories`` (root included),
``exfat:files``, ``exfat:bad entry sets`` (failed their checksum: skipped, and noted).
"""

from __future__ import annotations

import struct
from collections import deque
from contextlib import suppress
from dataclasses import dataclass

from engine.metadata.fat import FatTable, Notes, cluster_runs, read_sectors
from engine.metadata.signatures import EXFAT_MIN_SECTOR as MIN_SECTOR
from engine.metadata.signatures import EXFAT_REGION as REGION
from engine.metadata.signatures import EXFAT_SECTOR_SHIFTS as SECTOR_SHIFTS
from engine.metadata.signatures import EXFAT_SIGNATURE as SIGNATURE
from engine.metadata.signatures import exfat_other_boot_sector as _other_boot_sector
from engine.metadata.volume import P0, P1, P2, P3, P4, Reader, Volume

NAME = "exfat"

ENTRY = 32
MAX_DIR_BYTES = 256 << 20  # the specification's limit on a directory's size
MAX_DEPTH = 1024
T_END, T_BITMAP, T_UPCASE, T_FILE, T_STREAM = 0x00, 0x81, 0x82, 0x85, 0xC0
ATTR_DIR = 0x10
_CACHE = "_exfat_boot"  # attribute of the Volume that keeps the probe's result for plan()


# ------------------------------------------------------------------ the boot region
@dataclass(frozen=True)
class Geometry:
    """What a sane exFAT boot sector says (positions in bytes, relative to the volume)."""

    sector: int
    cluster_size: int
    volume_length: int  # in sectors
    fat_offset: int  # in sectors, like the two below
    fat_length: int
    heap_offset: int
    clusters: int
    root_cluster: int
    nfats: int
    active_fat: int

    @property
    def fat_used(self) -> int:
        return min((self.clusters + 2) * 4, self.fat_length * self.sector)

    def fat_pos(self, n: int) -> int:
        return (self.fat_offset + n * self.fat_length) * self.sector

    def cluster_pos(self, cluster: int) -> int:
        return self.heap_offset * self.sector + (cluster - 2) * self.cluster_size

    def fat_table(self, read: Reader, notes: Notes) -> FatTable:
        """The FAT of this volume (32-bit entries), read through ``read``, active copy first."""
        fats = [self.fat_pos(n) for n in self.fat_order()]
        return FatTable(read, fats, self.fat_used, 32, self.clusters, self.sector, notes)

    def fat_order(self) -> list[int]:
        """FAT numbers, the active one first."""
        return [self.active_fat, 1 - self.active_fat] if self.nfats == 2 else [0]


def parse_boot(raw: bytes | None) -> Geometry | None:
    """The geometry of an exFAT boot sector, or None if it is not a sane one."""
    if raw is None or len(raw) < MIN_SECTOR or raw[3:11] != SIGNATURE:
        return None
    if raw[510:512] != b"\x55\xaa" or any(raw[11:64]):
        return None
    length, fat_off, fat_len, heap, count, root = struct.unpack_from("<QIIIII", raw, 72)
    flags = struct.unpack_from("<H", raw, 106)[0]
    bps_shift, spc_shift, nfats = raw[108], raw[109], raw[110]
    if not 9 <= bps_shift <= 12 or spc_shift > 25 - bps_shift or nfats not in (1, 2):
        return None
    ok = (
        fat_off >= 24
        and fat_len * (1 << bps_shift) >= (count + 2) * 4
        and heap >= fat_off + fat_len * nfats
        and 0 < count <= (length - heap) >> spc_shift
        and 2 <= root < count + 2
    )
    if not ok:
        return None
    return Geometry(
        sector=1 << bps_shift,
        cluster_size=1 << (bps_shift + spc_shift),
        volume_length=length,
        fat_offset=fat_off,
        fat_length=fat_len,
        heap_offset=heap,
        clusters=count,
        root_cluster=root,
        nfats=nfats,
        active_fat=flags & 1 if nfats == 2 else 0,
    )


def boot_checksum(region: bytes, sector: int) -> bool:
    """Whether sector 11 of a boot region holds the checksum of sectors 0-10."""
    total = 0
    for i, byte in enumerate(region[: 11 * sector]):
        if i in (106, 107, 112):  # VolumeFlags and PercentInUse change without a new checksum
            continue
        total = ((total >> 1) | (total << 31)) + byte & 0xFFFFFFFF
    return region[11 * sector : 12 * sector] == struct.pack("<I", total) * (sector // 4)


@dataclass(frozen=True)
class Boot:
    """The geometry, the region it came from (0 main, 12 backup) and whether it was checked."""

    geo: Geometry
    region: int
    checked: bool


def _first_sector(vol: Volume) -> tuple[bytes | None, Geometry | None, int]:
    """The boot sector of the main region, else of a backup region (cached on the volume)."""
    cached = getattr(vol, _CACHE, None)
    if cached is None:
        raw = vol.read(0, MIN_SECTOR)
        geo, region = parse_boot(raw), 0
        if geo is None and not _other_boot_sector(raw):
            for shift in SECTOR_SHIFTS:
                raw = vol.read(REGION << shift, MIN_SECTOR)
                geo, region = parse_boot(raw), REGION
                if geo is not None and geo.sector == 1 << shift:
                    break
                geo = None
        cached = (raw if geo else None, geo, region)
        with suppress(AttributeError):  # a Volume that takes no attributes: read again later
            setattr(vol, _CACHE, cached)
    return cached


def _region(vol: Volume, first: bytes, geo: Geometry, region: int) -> Boot | None:
    """The boot region starting at sector ``region`` if its checksum holds (``first`` known)."""
    base = region * geo.sector
    rest = vol.read(base + MIN_SECTOR, REGION * geo.sector - MIN_SECTOR)
    if rest is None or not boot_checksum(first + rest, geo.sector):
        return None
    return Boot(geo, region, True)


def find_boot(vol: Volume, notes: Notes) -> Boot | None:
    """The main boot region if it checks, else the backup, else a lone sane boot sector."""
    first, geo, region = _first_sector(vol)
    if first is None or geo is None:
        return None
    boot = _region(vol, first, geo, region)
    if boot is not None:
        if region:
            notes("main boot sector unusable, using the backup boot region")
        return boot
    if region == 0:  # the main sector parsed but its region does not check: try the backup
        backup_first = vol.read(REGION * geo.sector, MIN_SECTOR)
        backup_geo = parse_boot(backup_first)
        if backup_first is not None and backup_geo is not None:
            boot = _region(vol, backup_first, backup_geo, REGION)
            if boot is not None:
                notes("main boot region fails its checksum, using the backup boot region")
                return boot
    notes("no boot region passes its checksum; using the boot sector unchecked")
    return Boot(geo, region, False)


# ------------------------------------------------------------------ module interface
def probe(vol: Volume) -> bool:
    """A sane exFAT boot sector at sector 0, or in the backup region (sector 12)."""
    return _first_sector(vol)[1] is not None


def plan(vol: Volume) -> None:
    """Add the areas of the exFAT filesystem on ``vol`` to its plan."""
    notes = Notes(vol, "exfat")
    boot = find_boot(vol, notes)
    if boot is None:
        notes("no valid boot sector")
        return
    if boot.region:
        vol.add(
            boot.region * boot.geo.sector,
            REGION * boot.geo.sector,
            P0,
            "exfat: backup boot region (used)",
        )
    _Walker(vol, boot.geo, notes).run()


# ------------------------------------------------------------------ the walk
@dataclass
class _Dir:
    """A directory to read: its clusters as byte spans, and its depth."""

    spans: list[tuple[int, int]]  # (pos, size) in the volume
    depth: int


@dataclass(frozen=True)
class _Stream:
    """What a file entry set says: directory or not, first cluster, length, NoFatChain."""

    directory: bool
    first: int
    length: int
    contiguous: bool


class _Walker:
    """Plans one exFAT volume: fixed areas, then a breadth-first walk of the directory tree."""

    def __init__(self, vol: Volume, geo: Geometry, notes: Notes):
        self.vol = vol
        self.geo = geo
        self.notes = notes
        self.fat = geo.fat_table(vol.read, notes)
        self.dir_clusters: set[int] = set()
        self.queue: deque[_Dir] = deque()

    def run(self) -> None:
        self._fixed_areas()
        self.vol.plan.count("exfat:directories")
        root = self._dir(self.geo.root_cluster, MAX_DIR_BYTES, False, 0, P1, "root directory")
        if root is not None:
            self._read_dir(root, is_root=True)
        walked = 0
        while self.queue and walked <= self.geo.clusters:
            self._read_dir(self.queue.popleft(), is_root=False)
            walked += 1
        if self.fat.fallbacks or self.fat.unreadable:  # TexFAT's second FAT stood in
            for n in self.geo.fat_order()[1:]:
                what = f"exfat: FAT {n + 1} (standing in for the active FAT)"
                self.vol.add(self.geo.fat_pos(n), self.geo.fat_used, P1, what)

    def _fixed_areas(self) -> None:
        geo, vol = self.geo, self.vol
        vol.add(0, REGION * geo.sector, P0, "exfat: main boot region")
        vol.add(REGION * geo.sector, REGION * geo.sector, P3, "exfat: backup boot region")
        for rank, n in enumerate(geo.fat_order()):
            tier, what = (P1, "active FAT") if rank == 0 else (P3, f"FAT {n + 1} (TexFAT)")
            vol.add(geo.fat_pos(n), geo.fat_used, tier, f"exfat: {what}")

    def _clusters(self, first: int, length: int, contiguous: bool) -> list[int]:
        """The clusters of ``length`` bytes from ``first`` (a run, or through the FAT)."""
        need = -(-length // self.geo.cluster_size)
        if not self.fat.valid(first) or need == 0:
            if need:
                self.notes(f"stream with invalid first cluster {first}")
            return []
        if contiguous:
            end = min(first + need, self.geo.clusters + 2)
            if end - first < need:
                self.notes(f"contiguous stream at {first} runs past the cluster heap")
            return list(range(first, end))
        clusters, problem = self.fat.clusters_of(first, need)
        if problem:
            self.notes(f"stream at cluster {first}: {problem}")
        return clusters

    def _plan_runs(self, clusters: list[int], tier: int, what: str) -> list[tuple[int, int]]:
        spans = []
        for first, count in cluster_runs(clusters):
            pos, size = self.geo.cluster_pos(first), count * self.geo.cluster_size
            self.vol.add(pos, size, tier, f"exfat: {what}")
            spans.append((pos, size))
        return spans

    def _dir(
        self, first: int, length: int, contiguous: bool, depth: int, tier: int, what: str
    ) -> _Dir | None:
        if first in self.dir_clusters:
            self.notes(f"directory cluster {first} reached twice (cross-linked); skipped")
            return None
        if length > MAX_DIR_BYTES:
            self.notes(f"directory at {first} claims {length} bytes; cut to {MAX_DIR_BYTES}")
            length = MAX_DIR_BYTES
        if contiguous:
            clusters = self._clusters(first, length, True)
        else:  # the root has no length: follow its chain to the end
            limit = -(-length // self.geo.cluster_size)
            chain = self.fat.chain(first, limit)
            if chain.ending not in ("end", "limit"):
                self.notes(f"directory chain from {first} ends early ({chain.ending})")
            clusters = chain.clusters
        clusters = [c for c in clusters if c not in self.dir_clusters]
        self.dir_clusters.update(clusters)
        return _Dir(self._plan_runs(clusters, tier, what), depth)

    def _entries(self, d: _Dir) -> list[bytes | None]:
        """The 32-byte entries of a directory, None for those in unreadable sectors."""
        out: list[bytes | None] = []
        per_sector = self.geo.sector // ENTRY
        for pos, size in d.spans:
            for spos, data in read_sectors(self.vol.read, pos, size, self.geo.sector):
                if data is None:
                    self.notes(f"directory sector at {spos} unreadable; its entries are lost")
                    out.extend([None] * per_sector)
                    continue
                out.extend(data[i : i + ENTRY] for i in range(0, len(data), ENTRY))
                if T_END in data[::ENTRY]:
                    return out  # an end-of-directory entry: nothing after it is read
        return out

    def _read_dir(self, d: _Dir, is_root: bool) -> None:
        entries = self._entries(d)
        i = 0
        while i < len(entries):
            e = entries[i]
            if e is None:
                i += 1
                continue
            kind = e[0]
            if kind == T_END:
                return
            if is_root and kind in (T_BITMAP, T_UPCASE):
                self._system(e)
            if kind != T_FILE:
                i += 1
                continue
            count = e[1]
            if not 2 <= count <= 18:  # a file has a stream and 1-17 name entries
                self.notes(f"file entry with {count} secondary entries; skipped")
                i += 1
                continue
            stream = self._entry_set(entries[i : i + 1 + count], count)
            if stream is not None:
                self._found(stream, d.depth + 1)
            i += 1 + count

    def _system(self, e: bytes) -> None:
        """The allocation bitmap (P1; TexFAT's second P3) or the up-case table (P2).

        Both are taken as contiguous runs, as the Linux driver and exfatprogs read them.
        """
        first, length = struct.unpack_from("<IQ", e, 20)
        if e[0] == T_BITMAP:
            if length * 8 < self.geo.clusters:
                self.notes(f"allocation bitmap of {length} bytes is too short")
            second = e[1] & 1
            tier, what = (P3, "second allocation bitmap") if second else (P1, "allocation bitmap")
        else:
            tier, what = P2, "up-case table"
        self._plan_runs(self._clusters(first, length, True), tier, what)

    def _entry_set(self, entries: list[bytes | None], count: int) -> _Stream | None:
        """The stream of a file entry set, if the set is whole, readable and checks."""
        if len(entries) < 1 + count:
            self.notes("file entry set cut by the end of its directory; skipped")
            return None
        if any(e is None for e in entries):
            self.notes("file entry set in an unreadable sector; skipped")
            return None
        raw = b"".join(e for e in entries if e is not None)
        if raw[ENTRY] != T_STREAM or set_checksum(raw) != struct.unpack_from("<H", raw, 2)[0]:
            self.vol.plan.count("exfat:bad entry sets")
            self.notes("file entry set fails its checksum or has no stream; skipped")
            return None
        attrs = struct.unpack_from("<H", raw, 4)[0]
        flags = raw[ENTRY + 1]
        first, length = struct.unpack_from("<IQ", raw, ENTRY + 20)
        allocated = bool(flags & 1)
        return _Stream(
            directory=bool(attrs & ATTR_DIR),
            first=first if allocated else 0,
            length=length if allocated else 0,
            contiguous=bool(flags & 2),
        )

    def _found(self, s: _Stream, depth: int) -> None:
        if not s.directory:
            self.vol.plan.count("exfat:files")
            if s.length:
                self._plan_runs(self._clusters(s.first, s.length, s.contiguous), P4, "file data")
            return
        self.vol.plan.count("exfat:directories")
        if depth > MAX_DEPTH:
            self.notes(f"directory at cluster {s.first} nested deeper than {MAX_DEPTH}; skipped")
            return
        if not s.length or not self.fat.valid(s.first):
            self.notes(f"directory with invalid first cluster {s.first}")
            return
        d = self._dir(s.first, s.length, s.contiguous, depth, P2, "directory")
        if d is not None:
            self.queue.append(d)


def set_checksum(raw: bytes) -> int:
    """The EntrySetChecksum of a file entry set (bytes 2-3 of the first entry left out)."""
    total = 0
    for i, byte in enumerate(raw):
        if i in (2, 3):
            continue
        total = ((total >> 1) | (total << 15)) + byte & 0xFFFF
    return total
