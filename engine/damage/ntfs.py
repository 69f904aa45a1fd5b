"""NTFS for the damage report: every in-use MFT record's streams and names, every directory
index's entries, and the system files, read only from finished bytes.

Every MFT record's ``$FILE_NAME`` holds its parent's reference, so a path is rebuilt from the
records up to the root (record 5) even when a directory's index is lost. Where a record itself
is unreadable, the entry that names it in its parent's index (also a ``$FILE_NAME``, with the
parent reference and size) stands in: the file is reported as an unknown extent with its path,
and its children still get theirs. When the parent's record is lost too (records next to each
other often go together), the index blocks (``INDX``, each entry naming its parent) are looked
for among the clusters $Bitmap marks used and no known stream claims. A component whose record
and index entry are both lost is printed as ``<MFT N>``.

The boot sector, record, runlist and fixup parsing is :mod:`engine.metadata.ntfs`'s, and so is
the loading of the $MFT runlist and bitmap (with the $MFTMirr fallback for records 0-3).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from engine.damage.model import (
    DIRECTORY,
    FILE,
    PARTIAL,
    UNKNOWN,
    Entry,
    VolumeReport,
    damage_of,
    merge,
    path_of,
)
from engine.metadata import ntfs as meta
from engine.metadata.volume import Volume

NAME = meta.NAME
ROOT = 5
DOS_NAMESPACE = 2
FN_DIRECTORY = 0x10000000
ENTRY_LAST = 0x02
MAX_INDEX_BLOCKS = 1 << 20
ORPHAN_SCAN_BYTES = 256 << 20  # at most this much unclaimed allocated space is searched
SCAN_CHUNK = 1 << 20


def probe(vol: Volume) -> bool:
    return meta.probe(vol)


@dataclass
class FileName:
    parent: int
    name: str
    namespace: int
    size: int
    directory: bool


def parse_file_name(value: bytes | None) -> FileName | None:
    """A ``$FILE_NAME`` value (an attribute's or an index key's), or None."""
    if value is None or len(value) < 0x42:
        return None
    parent = struct.unpack_from("<Q", value, 0)[0] & meta.REF_MASK
    size, flags = struct.unpack_from("<QI", value, 0x30)
    length, ns = value[0x40], value[0x41]
    if 0x42 + 2 * length > len(value) or not length or ns > 3:
        return None
    name = value[0x42 : 0x42 + 2 * length].decode("utf-16-le", "replace")
    return FileName(parent, name, ns, size, bool(flags & FN_DIRECTORY))


def subtract(spans: list[tuple[int, int]], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted disjoint ``spans`` minus sorted disjoint ``holes``."""
    out = []
    j = 0
    for s, e in spans:
        while j < len(holes) and holes[j][1] <= s:
            j += 1
        k = j
        while s < e:
            if k < len(holes) and holes[k][0] < e:
                if holes[k][0] > s:
                    out.append((s, holes[k][0]))
                s = max(s, holes[k][1])
                k += 1
            else:
                out.append((s, e))
                break
    return out


def index_entries(buf: bytes, header: int) -> list[tuple[int, FileName]]:
    """``(record, file name)`` of the entries of an index node whose header is at ``header``."""
    if header + 16 > len(buf):
        return []
    first, used = struct.unpack_from("<II", buf, header)
    pos, end = header + first, min(header + used, len(buf))
    out = []
    while pos + 16 <= end:
        ref, length, key_len, flags = struct.unpack_from("<QHHH", buf, pos)
        if length < 16 or pos + length > end:
            break
        if not flags & ENTRY_LAST or key_len:
            fn = parse_file_name(buf[pos + 16 : pos + 16 + key_len]) if key_len else None
            if fn is not None:
                out.append((ref & meta.REF_MASK, fn))
        if flags & ENTRY_LAST:
            break
        pos += length
    return out


@dataclass
class Owner:
    """A base record and the attributes of its extension records."""

    number: int
    directory: bool
    attrs: list[meta.Attr] = field(default_factory=list)
    names: list[FileName] = field(default_factory=list)
    extensions: set[int] = field(default_factory=set)
    base: bool = False  # its base record was read


class NtfsScan:
    """One scan of one NTFS volume."""

    def __init__(self, vol: Volume, boot: meta.Boot, out: VolumeReport) -> None:
        self.vol = vol
        self.boot = boot
        self.out = out
        self.p = meta.NtfsPlanner(vol, boot)
        self.owners: dict[int, Owner] = {}
        self.readable: set[int] = set()  # records read and valid (in use or not)
        self.lost: dict[int, str] = {}  # in-use records that cannot be read -> why
        self.doubtful: dict[int, str] = {}  # unreadable records the bitmap cannot vouch for
        self.indexed: dict[int, FileName] = {}  # record -> the index entry naming it

    def abs(self, pos: int) -> int:
        return self.vol.start + pos

    # -------------------------------------------------------------- records
    def load(self) -> None:
        p, b = self.p, self.boot
        self.out.meta("boot sector", self.abs(0), b.bps)
        self.out.meta("backup boot sector", self.abs(b.total_sectors * b.bps), b.bps)
        bitmap_attr = p.load_mft()
        if not p.mft.runs:
            p.guess_mft()
            numbers = range(p.mft_records)
            unknown = [(0, p.mft_records)]
        else:
            bitmap, unknown = p.mft_bitmap(bitmap_attr)
            numbers = list(p.candidates(bitmap))  # type: ignore[assignment]
        self.mft_hits()
        for n in numbers:
            self.record(n, any(lo <= n < hi for lo, hi in unknown))

    def mft_hits(self) -> None:
        """The $MFT records whose bytes are not all finished, as ranges of record numbers."""
        p, c = self.p, self.boot.cluster
        damage = damage_of(self.vol.read_disk)
        hit: set[int] = set()
        for vcn, lcn, count in p.mft.runs:
            if lcn is None:
                continue
            start = self.abs(lcn * c)
            if damage is None:
                spans = [(start, start + count * c)]  # read record by record below
            else:
                spans = damage.within(start, start + count * c)
            for s, e in spans:
                lo = (s - start + vcn * c) // p.rs
                hi = min(-(-(e - start + vcn * c) // p.rs), p.mft_records)
                for n in range(lo, hi):
                    if damage is not None or self.p.fetch(n)[0] is None:
                        hit.add(n)
        first = last = -1
        for n in sorted(hit):
            if n != last + 1:
                self.mft_range(first, last)
                first = n
            last = n
        self.mft_range(first, last)

    def mft_range(self, first: int, last: int) -> None:
        if first < 0:
            return
        what = f"$MFT record {first}" if first == last else f"$MFT records {first}-{last}"
        for n in range(first, last + 1):
            for pos, size in self.p.record_pieces(n):
                self.out.meta(what, self.abs(pos), size)

    def record(self, n: int, doubtful: bool) -> None:
        rec, readable = self.p.fetch(n)
        if rec is None:
            why = "MFT record unreadable" if not readable else "MFT record invalid"
            if not readable or not doubtful:
                (self.doubtful if doubtful else self.lost)[n] = why
            return
        self.readable.add(n)
        if not rec.flags & meta.IN_USE:
            return
        owner = self.owners.setdefault(rec.owner, Owner(rec.owner, False))
        if rec.base_ref:
            owner.extensions.add(n)
        else:
            owner.directory = bool(rec.flags & meta.DIRECTORY)
            owner.base = True
        owner.attrs += rec.attrs
        for attr in rec.attrs:
            if attr.type == meta.AT_FILE_NAME:
                fn = parse_file_name(attr.value)
                if fn is not None:
                    owner.names.append(fn)

    # -------------------------------------------------------------- streams
    def streams(self, owner: Owner, atype: int) -> dict[str, tuple[meta.Runlist, int, bool]]:
        """Per attribute name: its runs, its size, whether it is resident."""
        out: dict[str, tuple[meta.Runlist, int, bool]] = {}
        for a in owner.attrs:
            if a.type != atype:
                continue
            runs, size, resident = out.get(a.name, (meta.Runlist(self.boot.cluster), 0, False))
            if a.value is not None:
                out[a.name] = (runs, len(a.value), True)
                continue
            runs.extend(a.runs or [])
            if a.lowest_vcn == 0:
                size = a.data_size
            out[a.name] = (runs, size, resident)
        return out

    def spans(self, runs: meta.Runlist, size: int) -> list[tuple[int, int]]:
        return [(self.abs(pos), self.abs(pos) + n) for pos, n in runs.areas(0, size)]

    def problems(self, owner: Owner) -> list[str]:
        """What is unknown about an owner's attributes (lost extension records, runlists)."""
        out = []
        if any(a.value is None and a.runs is None for a in owner.attrs):
            out.append("a runlist is corrupt")
        for a in owner.attrs:
            if a.type != meta.AT_ATTRIBUTE_LIST:
                continue
            data, missing = self.p.read_stream(a, meta.MAX_LIST, 0)
            if missing:
                out.append("attribute list unreadable")
            refs = {ref for _t, _n, _v, ref in meta.parse_attribute_list(bytes(data))}
            gone = sorted(r for r in refs if r != owner.number and r not in self.readable)
            if gone:
                out.append("extension record(s) unreadable: " + ", ".join(f"MFT {r}" for r in gone))
        return out

    # -------------------------------------------------------------- indexes
    def read_index(self, owner: Owner) -> None:
        for a in owner.attrs:
            if a.type == meta.AT_INDEX_ROOT and a.name == "$I30" and a.value is not None:
                self.take(owner.number, index_entries(a.value, 16))
        alloc = self.streams(owner, meta.AT_INDEX_ALLOCATION).get("$I30")
        if alloc is None or alloc[2]:
            return
        runs, size = alloc[0], alloc[1]
        block = self.index_block_size(owner)
        lost = 0
        for i in range(min(size // block, MAX_INDEX_BLOCKS)):
            pieces = runs.pieces(i * block, block)
            if not pieces or any(pos is None for pos, _ in pieces):
                continue
            data = self.p.read_pieces(pieces)
            if data is None:
                lost += 1
                continue
            if meta.apply_fixups(data, b"INDX"):
                self.take(owner.number, index_entries(bytes(data), 0x18))
        if lost:
            self.out.notes.append(
                f"directory MFT {owner.number}: {lost} index block(s) unreadable; its entries"
                " there are named from their own MFT records"
            )

    def index_block_size(self, owner: Owner) -> int:
        for a in owner.attrs:
            if a.type == meta.AT_INDEX_ROOT and a.value is not None and len(a.value) >= 16:
                size = struct.unpack_from("<I", a.value, 8)[0]
                if 512 <= size <= 1 << 16 and not size & (size - 1):
                    return size
        return self.boot.index_size

    def take(self, parent: int, entries: list[tuple[int, FileName]]) -> None:
        for ref, fn in entries:
            if fn.parent != parent:
                continue
            old = self.indexed.get(ref)
            if old is None or old.namespace == DOS_NAMESPACE:
                self.indexed[ref] = fn

    # -------------------------------------------------------------- lost directories
    def claimed(self) -> list[tuple[int, int]]:
        """Sorted ``(first, end)`` cluster ranges of every known stream and of the $MFT."""
        spans = [(lcn, lcn + n) for _v, lcn, n in self.p.mft.runs if lcn is not None]
        for owner in self.owners.values():
            for a in owner.attrs:
                spans += [(lcn, lcn + n) for _v, lcn, n in a.runs or [] if lcn is not None]
        return sorted(spans)

    def allocated(self) -> list[tuple[int, int]]:
        """``(first, end)`` cluster runs $Bitmap marks used (to the byte: 8 clusters) that no
        known stream claims; all clusters when $Bitmap is unreadable."""
        clusters = self.boot.clusters
        owner = self.owners.get(meta.BITMAP_FILE)
        attrs = owner.attrs if owner else []
        data = next((a for a in attrs if a.type == meta.AT_DATA and not a.name), None)
        used = [(0, clusters)]
        if data is not None:
            bitmap = self.p.read_stream(data, (clusters + 7) // 8, 0xFF)[0]
            used = [
                (m.start() * 8, min(m.end() * 8, clusters))
                for m in re.finditer(rb"[^\x00]+", bytes(bitmap))
            ]
        return subtract(used, merge(self.claimed()))

    def orphan_indexes(self) -> None:
        """Index blocks of lost directories, found in the allocated clusters no known stream
        claims: their entries name the lost records (each entry holds its parent too)."""
        c = self.boot.cluster
        budget, found = ORPHAN_SCAN_BYTES, 0
        for first, end in self.allocated():
            pos, stop = first * c, end * c
            while pos < stop:
                if budget <= 0:
                    self.out.notes.append("search for lost index blocks cut short")
                    return
                n = min(SCAN_CHUNK, stop - pos)
                budget -= n
                data = self.vol.read(pos, n)
                for off in range(0, n, c):
                    head = data[off : off + 4] if data is not None else self.vol.read(pos + off, 4)
                    if head == b"INDX":
                        found += self.orphan_block(pos + off)
                pos += n
        if found:
            self.out.notes.append(f"{found} name(s) found in index blocks of lost directories")

    def orphan_block(self, pos: int) -> int:
        raw = self.vol.read(pos, self.boot.index_size)
        buf = bytearray(raw) if raw is not None else None
        if buf is None or not meta.apply_fixups(buf, b"INDX"):
            return 0
        found = 0
        for ref, fn in index_entries(bytes(buf), 0x18):
            if not 0 < ref < self.p.mft_records or not 0 < fn.parent < self.p.mft_records:
                continue
            old = self.indexed.get(ref)
            if old is None or (old.namespace == DOS_NAMESPACE != fn.namespace):
                found += old is None and (ref in self.lost or ref in self.doubtful)
                self.indexed[ref] = fn
        return found

    # -------------------------------------------------------------- report
    def names(self) -> dict[int, tuple[int | None, str]]:
        out: dict[int, tuple[int | None, str]] = {}
        for n, fn in self.indexed.items():
            out[n] = (fn.parent, fn.name)
        for n, owner in self.owners.items():
            best = sorted(owner.names, key=lambda f: f.namespace == DOS_NAMESPACE)
            if best:
                out[n] = (best[0].parent, best[0].name)
        return out

    def system(self, n: int, extend_children: set[int]) -> bool:
        return n != ROOT and (n < meta.SYSTEM_RECORDS or n in extend_children)

    def report(self) -> None:
        for owner in self.owners.values():
            if owner.directory:
                self.read_index(owner)
        if any(n not in self.indexed for n in (*self.lost, *self.doubtful)):
            self.orphan_indexes()
        names = self.names()
        extend = {
            n for n, o in self.owners.items() if any(f.parent == meta.EXTEND for f in o.names)
        }

        def placeholder(n: int) -> str:
            return f"<MFT {n}>"

        for n, owner in sorted(self.owners.items()):
            if not owner.base:
                continue  # only extension records: the base record is reported as lost
            if self.system(n, extend):
                self.system_areas(n, owner, names)
                continue
            path, lost = path_of(n, names, ROOT, placeholder)
            if owner.directory:
                alloc = self.streams(owner, meta.AT_INDEX_ALLOCATION).get("$I30")
                spans = self.spans(alloc[0], alloc[1]) if alloc and not alloc[2] else []
                size = alloc[1] if alloc else 0
                kind = DIRECTORY
            else:
                data = self.streams(owner, meta.AT_DATA)
                spans = [s for runs, sz, _r in data.values() for s in self.spans(runs, sz)]
                size = data.get("", (None, 0, False))[1]
                kind = FILE
            for a in owner.attrs:
                if a.value is None and a.type not in (meta.AT_DATA, meta.AT_INDEX_ALLOCATION):
                    kind_name = meta.ATTR_NAMES.get(a.type, f"attribute {a.type:#x}")
                    runs = meta.Runlist(self.boot.cluster, a.runs or [])
                    for s, e in self.spans(runs, a.alloc_size):
                        self.out.meta(f"{kind_name} of MFT {n} ({path})", s, e - s)
            entry = Entry(f"MFT {n}", kind, size, spans, path=path, name_lost=lost)
            problems = self.problems(owner)
            if problems:
                entry.extent, entry.reason = PARTIAL, "; ".join(problems)
            self.out.entries.append(entry)
        referenced = set(self.indexed)
        unread = {**{n: w for n, w in self.doubtful.items() if n in referenced}, **self.lost}
        for n, why in sorted(unread.items()):
            if self.system(n, extend):
                continue  # its record is in the $MFT hits already
            fn = self.indexed.get(n)
            kind = DIRECTORY if fn is not None and fn.directory else FILE
            path, lost_name = path_of(n, names, ROOT, placeholder)
            known = fn.size if fn is not None and not fn.directory else None
            self.out.entries.append(
                Entry(f"MFT {n}", kind, known, [], UNKNOWN, why, path, lost_name)
            )

    def system_areas(self, n: int, owner: Owner, names: dict[int, tuple[int | None, str]]) -> None:
        label = meta.SYSTEM_FILES.get(n) or names.get(n, (None, ""))[1] or f"system file {n}"
        for a in owner.attrs:
            if a.value is not None or (n == meta.MFT and a.type == meta.AT_DATA):
                continue
            if n == meta.BADCLUS and a.type == meta.AT_DATA:
                continue  # $BadClus:$Bad maps the bad clusters themselves
            kind = "" if a.type == meta.AT_DATA else meta.ATTR_NAMES.get(a.type, f"{a.type:#x}")
            what = label + (f":{a.name}" if a.name else "") + (f" {kind}" if kind else "")
            runs = meta.Runlist(self.boot.cluster, a.runs or [])
            size = a.data_size if a.type == meta.AT_DATA else a.alloc_size
            for s, e in self.spans(runs, size):
                self.out.meta(what, s, e - s)


def scan(vol: Volume) -> VolumeReport:
    """The entries and structures of the NTFS volume on ``vol``."""
    out = VolumeReport(NAME)
    boot, from_backup = meta.find_boot(vol)
    if boot is None:
        out.notes.append("no valid boot sector: nothing of this filesystem is known")
        return out
    if from_backup:
        out.notes.append("boot sector unreadable or invalid; using the backup boot sector")
    walk = NtfsScan(vol, boot, out)
    walk.load()
    walk.report()
    return out
