"""exFAT for the damage report: the directory tree (file entry sets with their names), every
file's clusters (a contiguous run with ``NoFatChain``, else its FAT chain), and the boot
regions, FAT, allocation bitmap and up-case table, read only from finished bytes.

exFAT directories have no ``..`` entry and there is no inode table, so an entry set in a lost
directory sector is gone. When that happens, the clusters the allocation bitmap marks used and
no found entry claims are looked at: one that starts with a whole, checked file entry set is a
lost directory, walked as ``<unknown>/<dir cluster N>`` (its own entry, and so its parent, is
lost), so the files inside keep their names. An entry set that fails its checksum is skipped
(a torn write), and a chain cut by an unreadable FAT makes its file's extent partial.

The boot region checks and the FAT reader are :mod:`engine.metadata.exfat`'s and
:mod:`engine.metadata.fat`'s.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from engine.damage.model import DIRECTORY, FILE, PARTIAL, UNKNOWN, Entry, VolumeReport, path_of
from engine.metadata import exfat as meta
from engine.metadata.fat import Notes, cluster_runs, read_sectors
from engine.metadata.volume import Volume

NAME = meta.NAME
ROOT = 0
T_NAME = 0xC1
ORPHAN_SCAN_CLUSTERS = 1 << 16  # unclaimed allocated clusters looked at for lost directories
MAX_ORPHAN_DIR_CLUSTERS = 4096


def probe(vol: Volume) -> bool:
    return meta.probe(vol)


@dataclass
class Stream:
    """What a whole, checked file entry set says."""

    name: str
    directory: bool
    first: int
    length: int
    contiguous: bool


def entry_set(raw: bytes) -> Stream | None:
    """The file entry set ``raw`` (file entry first), or None if it does not check."""
    count = raw[1]
    if len(raw) < 32 * (1 + count) or raw[32] != meta.T_STREAM:
        return None
    if meta.set_checksum(raw[: 32 * (1 + count)]) != struct.unpack_from("<H", raw, 2)[0]:
        return None
    attrs = struct.unpack_from("<H", raw, 4)[0]
    flags, name_len = raw[33], raw[35]
    first, length = struct.unpack_from("<IQ", raw, 32 + 20)
    chars = b"".join(
        raw[32 * i + 2 : 32 * i + 32] for i in range(2, 1 + count) if raw[32 * i] == T_NAME
    )
    name = chars[: 2 * name_len].decode("utf-16-le", "replace")
    allocated = bool(flags & 1)
    return Stream(
        name,
        bool(attrs & meta.ATTR_DIR),
        first if allocated else 0,
        length if allocated else 0,
        bool(flags & 2),
    )


class ExfatScan:
    """One scan of one exFAT volume."""

    def __init__(self, vol: Volume, boot: meta.Boot, out: VolumeReport, notes: Notes) -> None:
        self.vol = vol
        self.geo = geo = boot.geo
        self.out = out
        self.table = geo.fat_table(vol.read, notes)
        self.names: dict[int, tuple[int | None, str]] = {}
        self.queue: deque[tuple[int, list[int]]] = deque()  # (key, clusters)
        self.keys: set[int] = {ROOT}
        self.pending: list[tuple[int, str, Entry]] = []  # (parent key, name, entry)
        self.orphan: dict[int, Entry] = {}  # lost directories found by their content
        self.claimed: set[int] = set()
        self.bitmap: tuple[int, int] | None = None  # the allocation bitmap's cluster, length
        self.lost_sectors = 0

    def abs(self, pos: int) -> int:
        return self.vol.start + pos

    def structures(self) -> None:
        geo, out = self.geo, self.out
        region = meta.REGION * geo.sector
        out.meta("main boot region", self.abs(0), region)
        out.meta("backup boot region", self.abs(region), region)
        for n in range(geo.nfats):
            out.meta(f"FAT {n + 1}", self.abs(geo.fat_pos(n)), geo.fat_used)

    def clusters(self, s: Stream) -> tuple[list[int], str]:
        cs = self.geo.cluster_size
        need = -(-s.length // cs)
        if need == 0 or not self.table.valid(s.first):
            return [], "" if need == 0 else f"invalid first cluster {s.first}"
        if s.contiguous:
            return list(range(s.first, min(s.first + need, self.geo.clusters + 2))), ""
        chain = self.table.chain(s.first, need)
        if len(chain.clusters) < need and chain.ending == "unreadable":
            return chain.clusters, "FAT unreadable: the chain is cut"
        return chain.clusters, ""

    def spans(self, clusters: list[int], size: int | None) -> list[tuple[int, int]]:
        out, left = [], size
        for first, count in cluster_runs(clusters):
            pos, n = self.abs(self.geo.cluster_pos(first)), count * self.geo.cluster_size
            if left is not None:
                n = min(n, left)
                left -= n
            if n > 0:
                out.append((pos, pos + n))
        return out

    def run(self) -> None:
        geo = self.geo
        chain = self.table.chain(geo.root_cluster, meta.MAX_DIR_BYTES // geo.cluster_size)
        root = Entry(f"cluster {geo.root_cluster}", DIRECTORY, None, path="/")
        root.spans = self.spans(chain.clusters, None)
        root.size = len(chain.clusters) * geo.cluster_size
        if chain.ending == "unreadable":
            root.extent, root.reason = PARTIAL, "FAT unreadable: the chain is cut"
        self.out.entries.append(root)
        self.claimed.update(chain.clusters)
        self.queue.append((ROOT, chain.clusters))
        self.walk()
        if self.lost_sectors:
            self.orphans()
        self.finish()

    def walk(self) -> None:
        walked = 0
        while self.queue and walked <= self.geo.clusters:
            self.read_dir(*self.queue.popleft())
            walked += 1

    def entries(self, clusters: list[int]) -> tuple[list[bytes | None], int]:
        out: list[bytes | None] = []
        lost = 0
        sector = self.geo.sector
        for first, count in cluster_runs(clusters):
            pos, size = self.geo.cluster_pos(first), count * self.geo.cluster_size
            for _spos, data in read_sectors(self.vol.read, pos, size, sector):
                if data is None:
                    lost += 1
                    out.extend([None] * (sector // 32))
                    continue
                out.extend(data[i : i + 32] for i in range(0, len(data), 32))
                if meta.T_END in data[::32]:
                    return out, lost
        return out, lost

    def read_dir(self, key: int, clusters: list[int]) -> None:
        entries, lost = self.entries(clusters)
        where = "/" if key == ROOT else f"at cluster {key}"
        if lost:
            self.lost_sectors += lost
            self.out.notes.append(
                f"directory {where}: {lost} sector(s) unreadable, the entries in them are lost"
            )
        i = 0
        while i < len(entries):
            e = entries[i]
            if e is None or e[0] != meta.T_FILE:
                if e is not None and e[0] == meta.T_END:
                    return
                if e is not None and key == ROOT and e[0] in (meta.T_BITMAP, meta.T_UPCASE):
                    self.system(e)
                i += 1
                continue
            count = e[1]
            group = entries[i : i + 1 + count]
            if 2 <= count <= 18 and len(group) == 1 + count and all(g is not None for g in group):
                s = entry_set(b"".join(g for g in group if g is not None))
                if s is not None:
                    self.found(key, s)
                i += 1 + count
            else:
                i += 1

    def system(self, e: bytes) -> None:
        first, length = struct.unpack_from("<IQ", e, 20)
        if e[0] == meta.T_BITMAP:
            what = "second allocation bitmap" if e[1] & 1 else "allocation bitmap"
        else:
            what = "up-case table"
        s = Stream(what, False, first, length, True)
        clusters = self.clusters(s)[0]
        self.claimed.update(clusters)
        if what == "allocation bitmap":
            self.bitmap = (first, length)
        for a, b in self.spans(clusters, length):
            self.out.meta(what, a, b - a)

    def found(self, parent: int, s: Stream) -> None:
        clusters, problem = self.clusters(s)
        self.claimed.update(clusters)
        kind = DIRECTORY if s.directory else FILE
        entry = Entry(f"cluster {s.first}", kind, s.length, self.spans(clusters, s.length))
        if problem:
            entry.extent, entry.reason = PARTIAL, problem
        if s.directory and s.first in self.orphan:
            del self.orphan[s.first]  # found by content first: now it has a name
        self.pending.append((parent, s.name, entry))
        if s.directory and s.first:
            self.names[s.first] = (parent, s.name)
            if s.first not in self.keys:
                self.keys.add(s.first)
                self.queue.append((s.first, clusters))

    def finish(self) -> None:
        def placeholder(k: int) -> str:
            return f"<dir cluster {k}>"

        for parent, name, entry in self.pending:
            ppath, entry.name_lost = path_of(parent, self.names, ROOT, placeholder)
            entry.path = ppath.rstrip("/") + "/" + name
            self.out.entries.append(entry)
        for key, entry in self.orphan.items():
            entry.path, entry.name_lost = path_of(key, self.names, ROOT, placeholder)
            self.out.entries.append(entry)

    # -------------------------------------------------------------- lost directories
    def allocated(self) -> list[int]:
        """Clusters the allocation bitmap marks used (unreadable parts: all) and nothing
        found claims, in order."""
        geo = self.geo
        if self.bitmap is None:
            return []
        first, length = self.bitmap
        bits = bytearray()
        s = Stream("", False, first, length, True)
        for a, b in self.spans(self.clusters(s)[0], length):
            data = self.vol.read(a - self.vol.start, b - a)
            bits += data if data is not None else b"\xff" * (b - a)
        out = []
        for i, byte in enumerate(bits):
            if byte:
                for bit in range(8):
                    c = i * 8 + bit + 2
                    if byte >> bit & 1 and c < geo.clusters + 2 and c not in self.claimed:
                        out.append(c)
        return out

    def looks_like_directory(self, cluster: int) -> bool:
        """Whether a cluster starts with a whole, checked file entry set."""
        n = min(self.geo.cluster_size, 1024)
        raw = self.vol.read(self.geo.cluster_pos(cluster), n)
        if raw is None or raw[0] != meta.T_FILE or not 2 <= raw[1] <= 18:
            return False
        return 32 * (1 + raw[1]) <= n and entry_set(raw) is not None

    def orphans(self) -> None:
        """Lost directories, found by their content among the allocated clusters that no
        found entry claims; their files get paths under ``<dir cluster N>``."""
        budget = ORPHAN_SCAN_CLUSTERS
        found = 0
        for c in self.allocated():
            if c in self.claimed:
                continue
            budget -= 1
            if budget < 0:
                self.out.notes.append("search for lost directories cut short")
                break
            if not self.looks_like_directory(c):
                continue
            clusters = self.orphan_clusters(c)
            self.claimed.update(clusters)
            self.keys.add(c)
            self.names.setdefault(c, (None, ""))
            entry = Entry(f"cluster {c}", DIRECTORY, None, self.spans(clusters, None), UNKNOWN)
            entry.reason = "its entry set is lost: found by its content, size unknown"
            self.orphan[c] = entry
            self.queue.append((c, clusters))
            self.walk()
            found += 1
        if found:
            self.out.notes.append(f"{found} lost director(y/ies) found by their content")

    def orphan_clusters(self, first: int) -> list[int]:
        """A lost directory's clusters: its FAT chain, or (no chain) the allocated clusters
        after it up to its end-of-directory entry."""
        nxt = self.table.entry(first)
        if nxt:
            return self.table.chain(first, meta.MAX_DIR_BYTES // self.geo.cluster_size).clusters
        out: list[int] = []
        c = first
        while c < self.geo.clusters + 2 and len(out) < MAX_ORPHAN_DIR_CLUSTERS:
            out.append(c)
            data = self.vol.read(self.geo.cluster_pos(c), self.geo.cluster_size)
            if data is None or meta.T_END in data[::32]:
                break
            c += 1
            if c in self.claimed:
                break
        return out


def scan(vol: Volume) -> VolumeReport:
    """The entries and structures of the exFAT volume on ``vol``."""
    out = VolumeReport(NAME)
    notes = Notes(vol, "exfat")
    boot = meta.find_boot(vol, notes)
    if boot is None:
        out.notes.append("no valid boot sector: nothing of this filesystem is known")
        return out
    walk = ExfatScan(vol, boot, out, notes)
    walk.structures()
    walk.run()
    return out
