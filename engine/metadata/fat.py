"""FAT12/16/32: where the metadata of a FAT filesystem lives, found by walking it.

The chain (Microsoft's FAT specification; what ``fsck.fat -n`` reads, measured):

* the boot sector (BPB) gives the geometry; FAT32 keeps a copy at sector ``BkBootSec``
  (normally 6, with FSInfo and the third boot sector after it) and an FSInfo sector (1);
* ``nFATs`` copies of the FAT follow the reserved sectors; only the first
  ``ceil((clusters + 2) * bits / 8)`` bytes of each are used (all that fsck reads);
* FAT12/16 keep the root directory in a fixed region after the FATs, FAT32 in a cluster chain;
* directory entries lead to subdirectories (walked) and files (their chains are the data).

Tiers: P0 boot sector, FSInfo and the filesystem's last sector (fsck's size check); P1 the
active FAT and the root directory; P2 every other directory; P3 the other FAT copies and the
backup boot sectors; P4 the clusters of regular files.

Fallbacks: an unreadable or invalid boot sector is replaced by the FAT32 backup (FAT12/16 have
none); FAT entries come from the active copy, chunk by chunk, and from the other copy where
that chunk (or sector) cannot be read. Counts: ``fat:directories`` (the root included) and
``fat:files`` (regular files). :class:`FatTable`, :func:`cluster_runs`, :func:`read_sectors`
and :class:`Notes` are shared with :mod:`engine.metadata.exfat`.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass

from engine.metadata.signatures import FAT32_BACKUP, fat_boot_signed
from engine.metadata.signatures import FAT_MIN_SECTOR as MIN_SECTOR
from engine.metadata.signatures import FAT_SECTOR_SIZES as SECTOR_SIZES
from engine.metadata.volume import P0, P1, P2, P3, P4, Reader, Volume

NAME = "fat"

FAT_CHUNK = 32 * 1024  # FAT bytes read at a time
READ_MAX = 64 * 1024  # largest single read of a directory
MAX_DEPTH = 256  # directory nesting (FAT paths are at most 260 characters)
MAX_DIR_BYTES = 65536 * 32  # a directory holds at most 65,536 entries
MAX_NOTES = 20  # per volume and module; the rest are counted
ENTRY = 32
ATTR_LFN = 0x0F
ATTR_LABEL = 0x08
ATTR_DIR = 0x10
FREE_ENTRY = 0xE5
_CACHE = "_fat_boot"  # attribute of the Volume that keeps the probe's result for plan()


# ------------------------------------------------------------------ shared helpers
class Notes:
    """Notes of one volume, capped at :data:`MAX_NOTES` (the rest are only counted)."""

    def __init__(self, vol: Volume, prefix: str):
        self.vol = vol
        self.prefix = prefix
        self.made = 0

    def __call__(self, text: str) -> None:
        self.made += 1
        if self.made <= MAX_NOTES:
            self.vol.plan.note(f"{self.prefix} at {self.vol.start}: {text}")
        elif self.made == MAX_NOTES + 1:
            self.vol.plan.note(f"{self.prefix} at {self.vol.start}: (further notes left out)")


def read_sectors(
    read: Callable[[int, int], bytes | None], pos: int, size: int, sector: int
) -> Iterator[tuple[int, bytes | None]]:
    """``(pos, bytes | None)`` for each sector of ``[pos, pos+size)``.

    Reads at most :data:`READ_MAX` at a time; a part that cannot be read whole is read sector by
    sector, so one bad sector costs only itself.
    """
    end = pos + size
    while pos < end:
        n = min(READ_MAX, end - pos)
        data = read(pos, n)
        for off in range(0, n, sector):
            m = min(sector, n - off)
            if data is not None:
                yield pos + off, data[off : off + m]
            else:
                yield pos + off, read(pos + off, m)
        pos += n


def cluster_runs(clusters: list[int]) -> list[tuple[int, int]]:
    """Consecutive cluster numbers merged into ``(first, count)`` runs, in chain order."""
    runs: list[tuple[int, int]] = []
    for c in clusters:
        if runs and runs[-1][0] + runs[-1][1] == c:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((c, 1))
    return runs


@dataclass
class Chain:
    """A followed cluster chain and how it ended (end, free, bad, cycle, unreadable, limit)."""

    clusters: list[int]
    ending: str


class FatTable:
    """The entries of a FAT, read lazily in chunks, from the active copy and else the others.

    ``copies`` are the byte positions of the FAT copies, the active one first; ``length`` is
    the used part of one copy. Nothing is read twice: chunks are cached (also when they could
    not be read), and a chunk that no copy gives whole is assembled sector by sector.
    """

    def __init__(
        self,
        read: Callable[[int, int], bytes | None],
        copies: list[int],
        length: int,
        bits: int,
        clusters: int,
        sector: int,
        notes: Notes,
    ):
        self.read = read
        self.copies = copies
        self.length = length
        self.bits = bits
        self.clusters = clusters  # valid cluster numbers are 2 .. clusters + 1
        self.sector = sector
        self.notes = notes
        self.eoc = {12: 0xFF8, 16: 0xFFF8, 28: 0x0FFFFFF8, 32: 0xFFFFFFF8}[bits]
        self._chunks: dict[int, tuple[bytes, frozenset[int]]] = {}  # index -> data, bad sectors
        self.fallbacks = 0
        self.unreadable = 0

    def _chunk(self, index: int) -> tuple[bytes, frozenset[int]]:
        if index not in self._chunks:
            self._chunks[index] = self._load(index)
        return self._chunks[index]

    def _load(self, index: int) -> tuple[bytes, frozenset[int]]:
        start = index * FAT_CHUNK
        size = min(FAT_CHUNK, self.length - start)
        for n, base in enumerate(self.copies):
            data = self.read(base + start, size)
            if data is not None:
                if n:
                    self.fallbacks += 1
                    self.notes(f"FAT bytes {start}+{size} unreadable, read from another copy")
                return data, frozenset()
        buf = bytearray(size)
        bad = set()
        for off in range(0, size, self.sector):
            m = min(self.sector, size - off)
            for base in self.copies:
                data = self.read(base + start + off, m)
                if data is not None:
                    buf[off : off + m] = data
                    break
            else:
                bad.add(off // self.sector)
        if bad:
            self.unreadable += len(bad)
            self.notes(f"{len(bad)} FAT sector(s) near byte {start} unreadable in every copy")
        return bytes(buf), frozenset(bad)

    def _bytes(self, off: int, n: int) -> bytes | None:
        out = b""
        while n > 0:
            index, rel = divmod(off, FAT_CHUNK)
            data, bad = self._chunk(index)
            part = data[rel : rel + n]
            sectors = range(rel // self.sector, (rel + len(part) - 1) // self.sector + 1)
            if not part or bad.intersection(sectors):
                return None
            out += part
            off += len(part)
            n -= len(part)
        return out

    def entry(self, cluster: int) -> int | None:
        """The FAT entry of ``cluster``, or None when no copy can be read there."""
        if self.bits == 12:
            raw = self._bytes(cluster * 3 // 2, 2)
            if raw is None:
                return None
            value = int.from_bytes(raw, "little")
            return value >> 4 if cluster & 1 else value & 0xFFF
        width = 2 if self.bits == 16 else 4
        raw = self._bytes(cluster * width, width)
        if raw is None:
            return None
        value = int.from_bytes(raw, "little")
        return value & 0x0FFFFFFF if self.bits == 28 else value

    def valid(self, cluster: int) -> bool:
        return 2 <= cluster < self.clusters + 2

    def chain(self, first: int, limit: int) -> Chain:
        """Follow the chain from ``first`` for at most ``limit`` clusters (cycles stop it)."""
        clusters: list[int] = []
        seen: set[int] = set()
        cur = first
        limit = min(limit, self.clusters)
        while True:
            if not self.valid(cur):
                return Chain(clusters, "bad")
            if cur in seen:
                return Chain(clusters, "cycle")
            seen.add(cur)
            clusters.append(cur)
            if len(clusters) >= limit:
                return Chain(clusters, "limit")
            nxt = self.entry(cur)
            if nxt is None:
                return Chain(clusters, "unreadable")
            if nxt >= self.eoc:
                return Chain(clusters, "end")
            if nxt == 0:
                return Chain(clusters, "free")
            cur = nxt

    def clusters_of(self, first: int, need: int) -> tuple[list[int], str | None]:
        """The ``need`` clusters of data starting at ``first``, and what was wrong if anything.

        Where the FAT cannot be read the rest is assumed contiguous (the common layout).
        """
        chain = self.chain(first, need)
        clusters = chain.clusters
        if len(clusters) >= need or not clusters:
            return clusters, None if clusters else f"invalid first cluster {first}"
        if chain.ending == "unreadable":
            last = clusters[-1]
            extra = range(last + 1, min(last + 1 + need - len(clusters), self.clusters + 2))
            return [*clusters, *extra], "FAT unreadable there; assumed contiguous"
        return clusters, f"chain shorter than the size ({chain.ending})"


# ------------------------------------------------------------------ the boot sector
@dataclass(frozen=True)
class Geometry:
    """What a valid FAT boot sector says, with the derived layout (all in bytes)."""

    bps: int
    spc: int
    reserved: int
    nfats: int
    root_entries: int
    total_sectors: int
    fat_sectors: int
    fat32: bool
    ext_flags: int
    root_cluster: int
    fsinfo: int
    backup_boot: int

    @property
    def cluster_size(self) -> int:
        return self.bps * self.spc

    @property
    def root_dir_pos(self) -> int:
        return (self.reserved + self.nfats * self.fat_sectors) * self.bps

    @property
    def root_dir_size(self) -> int:
        return -(-self.root_entries * ENTRY // self.bps) * self.bps

    @property
    def data_start(self) -> int:
        return self.root_dir_pos + self.root_dir_size

    @property
    def clusters(self) -> int:
        """Cluster count: by the sectors left for data, capped by what the FAT can address."""
        count = (self.total_sectors * self.bps - self.data_start) // self.cluster_size
        capacity = self.fat_sectors * self.bps * 8 // self.bits - 2
        return max(0, min(count, capacity))

    @property
    def bits(self) -> int:
        """12, 16 or 28 (FAT32); FAT32 by the BPB layout, FAT12/16 by cluster count."""
        if self.fat32:
            return 28
        count = (self.total_sectors * self.bps - self.data_start) // self.cluster_size
        return 12 if count < 4085 else 16

    @property
    def fat_used(self) -> int:
        """Bytes of one FAT copy that describe clusters (all that fsck.fat reads)."""
        entry_bits = 32 if self.fat32 else self.bits
        used = -(-(self.clusters + 2) * entry_bits // 8)
        return min(used, self.fat_sectors * self.bps)

    def fat_pos(self, n: int) -> int:
        return (self.reserved + n * self.fat_sectors) * self.bps

    def cluster_pos(self, cluster: int) -> int:
        return self.data_start + (cluster - 2) * self.cluster_size

    def fat_table(self, read: Reader, notes: Notes) -> FatTable:
        """The FAT of this volume, read through ``read``, its copies tried in order."""
        fats = [self.fat_pos(n) for n in self.active_fats()]
        return FatTable(read, fats, self.fat_used, self.bits, self.clusters, self.bps, notes)

    def active_fats(self) -> list[int]:
        """FAT numbers, the active one first (FAT32 with mirroring off may name another)."""
        order = list(range(self.nfats))
        if self.fat32 and self.ext_flags & 0x80 and (self.ext_flags & 0x0F) < self.nfats:
            active = self.ext_flags & 0x0F
            order.remove(active)
            order.insert(0, active)
        return order


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def parse_boot(raw: bytes | None) -> Geometry | None:
    """The geometry of a FAT boot sector, or None if it is not a sane one."""
    if raw is None or not fat_boot_signed(raw):  # signed, and a jump as every formatter writes
        return None
    bps, spc, reserved, nfats, root_entries, total16, media, fatsz16 = struct.unpack_from(
        "<HBHBHHBH", raw, 11
    )
    total32, fatsz32, ext_flags, _version, root_cluster, fsinfo, backup = struct.unpack_from(
        "<4xIIHHIHH", raw, 28
    )
    fat32 = fatsz16 == 0
    ok = (
        bps in SECTOR_SIZES
        and _power_of_two(spc)
        and spc * bps <= 256 * 1024
        and reserved >= 1
        and nfats in (1, 2)
        and (media >= 0xF8 or media == 0xF0)
        and (total16 or total32)
        and (fatsz32 if fat32 else fatsz16)
        and (root_entries == 0 if fat32 else root_entries > 0)
    )
    if not ok:
        return None
    geo = Geometry(
        bps=bps,
        spc=spc,
        reserved=reserved,
        nfats=nfats,
        root_entries=root_entries,
        total_sectors=total16 or total32,
        fat_sectors=fatsz32 if fat32 else fatsz16,
        fat32=fat32,
        ext_flags=ext_flags if fat32 else 0,
        root_cluster=root_cluster if fat32 else 0,
        fsinfo=fsinfo if fat32 else 0,
        backup_boot=backup if fat32 else 0,
    )
    if geo.data_start >= geo.total_sectors * bps or geo.clusters < 1:
        return None
    if fat32 and not 2 <= root_cluster < geo.clusters + 2:
        return None
    return geo


@dataclass(frozen=True)
class Boot:
    """The geometry, and the sector it was taken from (0, or the FAT32 backup)."""

    geo: Geometry
    sector: int


def find_boot(vol: Volume) -> Boot | None:
    """The boot sector at 0, else a FAT32 backup at sector 6 (cached on the volume)."""
    cached = getattr(vol, _CACHE, False)
    if cached is not False:
        return cached if isinstance(cached, Boot) else None
    boot = None
    geo = parse_boot(vol.read(0, MIN_SECTOR))
    if geo is not None:
        boot = Boot(geo, 0)
    else:
        for bps in SECTOR_SIZES:
            geo = parse_boot(vol.read(FAT32_BACKUP * bps, MIN_SECTOR))
            if geo is not None and geo.fat32 and geo.bps == bps:
                boot = Boot(geo, FAT32_BACKUP)
                break
    with suppress(AttributeError):  # a Volume that takes no attributes: probe() reads again
        setattr(vol, _CACHE, boot)
    return boot


# ------------------------------------------------------------------ module interface
def probe(vol: Volume) -> bool:
    """A sane FAT boot sector at sector 0 (or only the FAT32 backup at sector 6)."""
    return find_boot(vol) is not None


def plan(vol: Volume) -> None:
    """Add the areas of the FAT filesystem on ``vol`` to its plan."""
    boot = find_boot(vol)
    if boot is None:
        vol.plan.note(f"fat at {vol.start}: no valid boot sector")
        return
    _Walker(vol, boot).run()


# ------------------------------------------------------------------ the walk
@dataclass
class _Dir:
    """A directory to read: its clusters (or the FAT12/16 root region) and its depth."""

    spans: list[tuple[int, int]]  # (pos, size) in the volume
    depth: int


class _Walker:
    """Plans one FAT volume: fixed areas, then a breadth-first walk of the directory tree."""

    def __init__(self, vol: Volume, boot: Boot):
        self.vol = vol
        self.geo = boot.geo
        self.boot = boot
        self.notes = Notes(vol, "fat")
        geo = self.geo
        self.fat = geo.fat_table(vol.read, self.notes)
        self.dir_clusters: set[int] = set()
        self.queue: deque[_Dir] = deque()

    def run(self) -> None:
        self._fixed_areas()
        root = self._root()
        if root is not None:
            self.queue.append(root)
        walked = 0
        while self.queue and walked <= self.geo.clusters:
            self._read_dir(self.queue.popleft())
            walked += 1
        self._promote_stand_ins()

    def _promote_stand_ins(self) -> None:
        """Copies that stood in for unreadable primaries are needed as early as those."""
        geo = self.geo
        if self.fat.fallbacks or self.fat.unreadable:
            for n in geo.active_fats()[1:]:
                what = f"fat: FAT {n + 1} (standing in for the active FAT)"
                self.vol.add(geo.fat_pos(n), geo.fat_used, P1, what)
        if self.boot.sector:
            self.vol.add(self.boot.sector * geo.bps, geo.bps, P0, "fat: backup boot sector (used)")

    def _fixed_areas(self) -> None:
        geo, vol = self.geo, self.vol
        vol.add(0, geo.bps, P0, "fat: boot sector")
        if geo.fat32 and 0 < geo.fsinfo < geo.reserved:
            vol.add(geo.fsinfo * geo.bps, geo.bps, P0, "fat: FSInfo")
        vol.add(geo.total_sectors * geo.bps - geo.bps, geo.bps, P0, "fat: last sector")
        for rank, n in enumerate(geo.active_fats()):
            tier, what = (P1, "active FAT") if rank == 0 else (P3, f"FAT {n + 1} (copy)")
            vol.add(geo.fat_pos(n), geo.fat_used, tier, f"fat: {what}")
        if 0 < geo.backup_boot < geo.reserved:
            vol.add(geo.backup_boot * geo.bps, 3 * geo.bps, P3, "fat: backup boot sectors")
        if self.boot.sector:
            self.notes(f"boot sector unusable, using the backup at sector {self.boot.sector}")

    def _root(self) -> _Dir | None:
        geo = self.geo
        self.vol.plan.count("fat:directories")
        if not geo.fat32:
            self.vol.add(geo.root_dir_pos, geo.root_dir_size, P1, "fat: root directory")
            return _Dir([(geo.root_dir_pos, geo.root_dir_size)], 0)
        return self._dir_chain(geo.root_cluster, 0, P1, "fat: root directory")

    def _dir_chain(self, first: int, depth: int, tier: int, what: str) -> _Dir | None:
        """The clusters of a directory, planned at ``tier``; None if already walked."""
        if first in self.dir_clusters:
            self.notes(f"directory cluster {first} reached twice (cross-linked); skipped")
            return None
        chain = self.fat.chain(first, MAX_DIR_BYTES // self.geo.cluster_size)
        clusters = [c for c in chain.clusters if c not in self.dir_clusters]
        if chain.ending not in ("end", "limit"):
            self.notes(f"directory chain from {first} ends early ({chain.ending})")
        self.dir_clusters.update(clusters)
        return _Dir(self._plan_runs(clusters, tier, what), depth)

    def _plan_runs(self, clusters: list[int], tier: int, what: str) -> list[tuple[int, int]]:
        spans = []
        for first, count in cluster_runs(clusters):
            pos, size = self.geo.cluster_pos(first), count * self.geo.cluster_size
            self.vol.add(pos, size, tier, what)
            spans.append((pos, size))
        return spans

    def _read_dir(self, d: _Dir) -> None:
        for pos, size in d.spans:
            for spos, data in read_sectors(self.vol.read, pos, size, self.geo.bps):
                if data is None:
                    self.notes(f"directory sector at {spos} unreadable; its entries are lost")
                    continue
                for off in range(0, len(data) - ENTRY + 1, ENTRY):
                    if data[off] == 0:
                        return  # end of directory
                    self._entry(data[off : off + ENTRY], d.depth)

    def _entry(self, raw: bytes, depth: int) -> None:
        attr = raw[11]
        if raw[0] == FREE_ENTRY or attr & 0x3F == ATTR_LFN or attr & ATTR_LABEL:
            return
        if raw[0] == 0x2E and raw[1:2] in (b" ", b"."):  # "." and ".."
            return
        lo, size = struct.unpack_from("<HI", raw, 26)
        hi = struct.unpack_from("<H", raw, 20)[0] if self.geo.fat32 else 0
        first = hi << 16 | lo
        if attr & ATTR_DIR:
            self._subdir(first, depth + 1)
        else:
            self._file(first, size)

    def _subdir(self, first: int, depth: int) -> None:
        self.vol.plan.count("fat:directories")
        if not self.fat.valid(first):
            self.notes(f"directory entry with invalid first cluster {first}")
            return
        if depth > MAX_DEPTH:
            self.notes(f"directory at cluster {first} nested deeper than {MAX_DEPTH}; skipped")
            return
        d = self._dir_chain(first, depth, P2, "fat: directory")
        if d is not None:
            self.queue.append(d)

    def _file(self, first: int, size: int) -> None:
        self.vol.plan.count("fat:files")
        if size == 0:
            return
        if not self.fat.valid(first):
            self.notes(f"file of {size} bytes with invalid first cluster {first}")
            return
        need = -(-size // self.geo.cluster_size)
        clusters, problem = self.fat.clusters_of(first, need)
        if problem:
            self.notes(f"file at cluster {first}: {problem}")
        self._plan_runs(clusters, P4, "fat: file data")
