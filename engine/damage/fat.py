"""FAT12/16/32 for the damage report: the directory tree with long names, every file's cluster
chain, and the boot sectors and FATs, read only from finished bytes.

FAT keeps a file's name, size and first cluster only in its directory entry, so a file whose
directory sector is lost cannot be named. What can still be found: a subdirectory of a lost
directory starts with ``.`` and ``..`` entries, so when a directory is (partly) lost the FAT
is scanned for chains no found entry claims; a chain that starts like a directory is walked
as ``<dir cluster N>`` under the directory its ``..`` names, and a chain that does not is a
file whose entry is lost (an unknown extent: its whole chain is counted). A chain cut by an
unreadable FAT sector (in every copy) makes its file's extent partial.

The boot sector parsing and the FAT reader (active copy, then the others) are
:mod:`engine.metadata.fat`'s.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from engine.damage.model import (
    DIRECTORY,
    FILE,
    PARTIAL,
    UNKNOWN,
    Entry,
    VolumeReport,
    path_of,
)
from engine.metadata import fat as meta
from engine.metadata.volume import Volume

NAME = meta.NAME
ROOT = 0  # the root's key in the names (a ``..`` entry naming the root holds 0)
MAX_DIR_CLUSTERS = 65536


def probe(vol: Volume) -> bool:
    return meta.probe(vol)


@dataclass
class DirEntry:
    """A short entry with its long name (if any)."""

    name: str
    attr: int
    first: int
    size: int


def short_name(raw: bytes) -> str:
    base = raw[0:8].rstrip(b" ")
    ext = raw[8:11].rstrip(b" ")
    if base[:1] == b"\x05":
        base = b"\xe5" + base[1:]
    b = base.decode("cp437")
    e = ext.decode("cp437")
    if raw[12] & 0x08:
        b = b.lower()
    if raw[12] & 0x10:
        e = e.lower()
    return f"{b}.{e}" if e else b


def lfn_checksum(raw: bytes) -> int:
    total = 0
    for byte in raw[:11]:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


class Listing:
    """Parses the 32-byte entries of a directory, sector by sector, long names included."""

    def __init__(self, fat32: bool) -> None:
        self.fat32 = fat32
        self.parts: dict[int, str] = {}
        self.check = -1
        self.ended = False
        self.dotdot: int | None = None
        self.dot: int | None = None

    def lost(self) -> None:
        self.parts, self.check = {}, -1

    def feed(self, data: bytes) -> list[DirEntry]:
        out: list[DirEntry] = []
        for off in range(0, len(data) - meta.ENTRY + 1, meta.ENTRY):
            raw = data[off : off + meta.ENTRY]
            if raw[0] == 0:
                self.ended = True
                return out
            attr = raw[11]
            if raw[0] == meta.FREE_ENTRY:
                self.lost()
                continue
            if attr & 0x3F == meta.ATTR_LFN:
                seq = raw[0]
                if seq & 0x40:
                    self.parts, self.check = {}, raw[13]
                chars = raw[1:11] + raw[14:26] + raw[28:32]
                self.parts[seq & 0x1F] = chars.decode("utf-16-le", "replace")
                continue
            lo, size = struct.unpack_from("<HI", raw, 26)
            hi = struct.unpack_from("<H", raw, 20)[0] if self.fat32 else 0
            first = hi << 16 | lo
            if raw[0] == 0x2E and raw[1:2] in (b" ", b"."):
                if raw[1:2] == b".":
                    self.dotdot = first
                else:
                    self.dot = first
                self.lost()
                continue
            if attr & meta.ATTR_LABEL:
                self.lost()
                continue
            name = short_name(raw)
            if self.parts and self.check == lfn_checksum(raw):
                order = sorted(self.parts)
                if order == list(range(1, len(order) + 1)):
                    name = "".join(self.parts[i] for i in order).split("\0", 1)[0]
            self.lost()
            out.append(DirEntry(name, attr, first, size))
        return out


@dataclass
class _Dir:
    key: int  # first cluster (ROOT for the root)
    spans: list[tuple[int, int]]  # volume (pos, size)


class FatScan:
    """One scan of one FAT volume."""

    def __init__(self, vol: Volume, boot: meta.Boot, out: VolumeReport) -> None:
        self.vol = vol
        self.geo = geo = boot.geo
        self.out = out
        self.table = geo.fat_table(vol.read, meta.Notes(vol, "fat"))
        self.names: dict[int, tuple[int | None, str]] = {}
        self.claimed: set[int] = set()
        self.queue: deque[_Dir] = deque()
        self.files: list[tuple[int, DirEntry]] = []  # (parent key, entry)
        self.dirs: list[tuple[int, Entry]] = []  # (key, entry)
        self.dir_keys: set[int] = {ROOT}
        self.damaged_dirs = False

    def abs(self, pos: int) -> int:
        return self.vol.start + pos

    def structures(self, boot: meta.Boot) -> None:
        geo, out = self.geo, self.out
        out.meta("boot sector", self.abs(0), geo.bps)
        if geo.fat32 and 0 < geo.fsinfo < geo.reserved:
            out.meta("FSInfo sector", self.abs(geo.fsinfo * geo.bps), geo.bps)
        if 0 < geo.backup_boot < geo.reserved:
            out.meta("backup boot sectors", self.abs(geo.backup_boot * geo.bps), 3 * geo.bps)
        for n in range(geo.nfats):
            out.meta(f"FAT {n + 1}", self.abs(geo.fat_pos(n)), geo.fat_used)
        if boot.sector:
            out.notes.append(f"boot sector unusable; using the backup at sector {boot.sector}")

    # -------------------------------------------------------------- chains
    def chain_spans(self, clusters: list[int], size: int | None) -> list[tuple[int, int]]:
        cs = self.geo.cluster_size
        out = []
        for first, count in meta.cluster_runs(clusters):
            out.append((self.geo.cluster_pos(first), count * cs))
        if size is None:
            return [(self.abs(p), self.abs(p) + n) for p, n in out]
        spans, left = [], size
        for p, n in out:
            take = min(n, left)
            if take > 0:
                spans.append((self.abs(p), self.abs(p) + take))
            left -= take
        return spans

    def follow(self, first: int, need: int) -> tuple[list[int], str]:
        chain = self.table.chain(first, need)
        self.claimed.update(chain.clusters)
        return chain.clusters, chain.ending

    # -------------------------------------------------------------- the walk
    def run(self) -> None:
        geo = self.geo
        if geo.fat32:
            clusters, ending = self.follow(geo.root_cluster, MAX_DIR_CLUSTERS)
            root = Entry(f"cluster {geo.root_cluster}", DIRECTORY, None, path="/")
            root.spans = self.chain_spans(clusters, None)
            root.size = len(clusters) * geo.cluster_size
            self.dir_problem(root, ending)
            self.dirs.append((ROOT, root))
            self.queue.append(
                _Dir(ROOT, [(geo.cluster_pos(c), geo.cluster_size) for c in clusters])
            )
        else:
            span = (geo.root_dir_pos, geo.root_dir_size)
            root = Entry("root directory", DIRECTORY, geo.root_dir_size, path="/")
            root.spans = [(self.abs(span[0]), self.abs(span[0] + span[1]))]
            self.dirs.append((ROOT, root))
            self.queue.append(_Dir(ROOT, [span]))
        self.walk()
        if self.damaged_dirs:
            self.orphans()
        self.report()

    def dir_problem(self, entry: Entry, ending: str) -> None:
        if ending == "unreadable":
            entry.extent, entry.reason = PARTIAL, "FAT unreadable: the chain is cut"
            self.damaged_dirs = True

    def walk(self) -> None:
        seen = 0
        while self.queue and seen <= self.geo.clusters:
            self.read_dir(self.queue.popleft())
            seen += 1

    def read_dir(self, d: _Dir) -> None:
        listing = Listing(self.geo.fat32)
        lost = 0
        for pos, size in d.spans:
            for _spos, data in meta.read_sectors(self.vol.read, pos, size, self.geo.bps):
                if data is None:
                    lost += 1
                    listing.lost()
                    continue
                for e in listing.feed(data):
                    self.entry(d.key, e)
                if listing.ended:
                    break
            if listing.ended:
                break
        if lost:
            self.damaged_dirs = True
            self.out.notes.append(
                f"directory {self.key_name(d.key)}: {lost} sector(s) unreadable,"
                " the entries in them are lost"
            )

    def key_name(self, key: int) -> str:
        return "/" if key == ROOT else f"at cluster {key}"

    def entry(self, parent: int, e: DirEntry) -> None:
        if not e.attr & meta.ATTR_DIR:
            self.files.append((parent, e))
            if e.size and self.table.valid(e.first):
                self.claimed.add(e.first)
            return
        if not self.table.valid(e.first) or self.names.get(e.first, (None, ""))[1]:
            return
        self.names[e.first] = (parent, e.name)
        self.subdir(e.first, parent)

    def subdir(self, first: int, parent: int | None) -> None:
        self.names.setdefault(first, (parent, ""))
        if first in self.dir_keys:
            return
        self.dir_keys.add(first)
        clusters, ending = self.follow(first, MAX_DIR_CLUSTERS)
        entry = Entry(f"cluster {first}", DIRECTORY, len(clusters) * self.geo.cluster_size)
        entry.spans = self.chain_spans(clusters, None)
        self.dir_problem(entry, ending)
        self.dirs.append((first, entry))
        cs = self.geo.cluster_size
        self.queue.append(_Dir(first, [(self.geo.cluster_pos(c), cs) for c in clusters]))

    # -------------------------------------------------------------- lost entries
    def unclaimed_heads(self) -> list[int]:
        """First clusters of the allocated chains that no found entry claims."""
        table, geo = self.table, self.geo
        for _parent, e in self.files:
            if e.size and table.valid(e.first):
                self.follow(e.first, -(-e.size // geo.cluster_size))
        nxt: dict[int, int] = {}
        for c in range(2, geo.clusters + 2):
            if c not in self.claimed:
                v = table.entry(c)
                if v:
                    nxt[c] = v
        pointed = set(nxt.values())
        return sorted(c for c in nxt if c not in pointed)

    def orphans(self) -> None:
        """Chains no found entry claims: lost directories (walked) and lost files."""
        geo = self.geo
        for head in self.unclaimed_heads():
            raw = self.vol.read(geo.cluster_pos(head), geo.bps)
            if raw is None or raw[:11] != b".          " or not raw[11] & meta.ATTR_DIR:
                continue
            listing = Listing(geo.fat32)
            listing.feed(raw)
            parent = listing.dotdot
            if parent is not None and geo.fat32 and parent == geo.root_cluster:
                parent = ROOT
            self.subdir(head, parent)
        self.walk()
        lost_files = 0
        for head in self.unclaimed_heads():
            clusters, _ending = self.follow(head, geo.clusters)
            lost_files += 1
            entry = Entry(f"cluster {head}", FILE, None, extent=UNKNOWN)
            entry.reason = "directory entry lost: size unknown, its whole chain is counted"
            entry.spans = self.chain_spans(clusters, None)
            entry.path, entry.name_lost = f"<unknown>/<chain at cluster {head}>", True
            self.out.entries.append(entry)
        if lost_files:
            self.out.notes.append(
                f"{lost_files} cluster chain(s) belong to no entry found (their directory"
                " entries are lost)"
            )

    # -------------------------------------------------------------- report
    def placeholder(self, key: int) -> str:
        return f"<dir cluster {key}>"

    def path(self, key: int) -> tuple[str, bool]:
        return path_of(key, self.names, ROOT, self.placeholder)

    def report(self) -> None:
        for key, entry in self.dirs:
            if key != ROOT:
                entry.path, entry.name_lost = self.path(key)
            self.out.entries.append(entry)
        cs = self.geo.cluster_size
        for parent, e in self.files:
            ppath, lost = self.path(parent)
            entry = Entry(f"cluster {e.first}", FILE, e.size, name_lost=lost)
            entry.path = ppath.rstrip("/") + "/" + e.name
            if e.size:
                if not self.table.valid(e.first):
                    entry.extent, entry.reason = PARTIAL, f"invalid first cluster {e.first}"
                else:
                    need = -(-e.size // cs)
                    clusters, ending = self.follow(e.first, need)
                    entry.spans = self.chain_spans(clusters, e.size)
                    if len(clusters) < need and ending == "unreadable":
                        entry.extent, entry.reason = PARTIAL, "FAT unreadable: the chain is cut"
            self.out.entries.append(entry)


def scan(vol: Volume) -> VolumeReport:
    """The entries and structures of the FAT volume on ``vol``."""
    out = VolumeReport(NAME)
    boot = meta.find_boot(vol)
    if boot is None:
        out.notes.append("no valid boot sector: nothing of this filesystem is known")
        return out
    walk = FatScan(vol, boot, out)
    walk.structures(boot)
    walk.run()
    return out
