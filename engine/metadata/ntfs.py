"""NTFS for the metadata planner: boot sector, $MFT, every in-use MFT record and what it points to.

The walk is chkdsk's: the boot sector (or its backup in the volume's last sector) gives the
$MFT; record 0 (or its $MFTMirr copy) gives the MFT's extents and its $BITMAP; then every
record the bitmap marks in use is read, checked (``FILE`` magic, update-sequence fixups,
attribute bounds) and its non-resident attributes planned: index allocations, bitmaps and
attribute lists as core metadata, the system files by their role, regular files' streams as
used data. Directories' index blocks (``INDX``) are read and checked too.

Tiers: P0 the boot sector and its backup; P1 records 0-23, $MFT's $BITMAP, attribute list and
extension records, $Bitmap; P2 the in-use MFT, index allocations, bitmaps, attribute lists,
$LogFile restart pages, $UpCase, $AttrDef, $Secure, $Boot; P3 $MFTMirr and the $LogFile body;
P4 the streams of regular files.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from engine.metadata.signatures import NTFS_BACKUP_SECTORS
from engine.metadata.signatures import NTFS_OEM_ID as OEM_ID
from engine.metadata.volume import P0, P1, P2, P3, P4, Volume

NAME = "ntfs"
BLOCK = 512  # update-sequence stride, whatever the sector size
CHUNK = 64 * 1024  # largest single read (MFT records, bitmaps, attribute lists)
SYSTEM_RECORDS = 24  # records 0-23: system files and reserved
MIRROR_RECORDS = 4
LOGFILE_RESTART = 8192  # two 4 KiB restart pages
MAX_LIST = 4 << 20  # sanity bound for an attribute list / index bitmap
GUESS_STREAK = 1024  # without a runlist: stop after this many invalid records in a row
MFT, MFTMIRR, LOGFILE, BITMAP_FILE, BADCLUS, EXTEND = 0, 1, 2, 6, 8, 11  # record numbers
IN_USE, DIRECTORY = 0x01, 0x02
REF_MASK = (1 << 48) - 1  # a file reference: record number (48 bits), sequence number (16)
AT_ATTRIBUTE_LIST, AT_FILE_NAME, AT_DATA = 0x20, 0x30, 0x80
AT_INDEX_ROOT, AT_INDEX_ALLOCATION, AT_BITMAP, AT_END = 0x90, 0xA0, 0xB0, 0xFFFFFFFF
ATTR_NAMES = {
    0x20: "$ATTRIBUTE_LIST", 0x40: "$OBJECT_ID", 0x50: "$SECURITY_DESCRIPTOR",
    0x60: "$VOLUME_NAME", 0x70: "$VOLUME_INFORMATION", 0x90: "$INDEX_ROOT",
    0xA0: "$INDEX_ALLOCATION", 0xB0: "$BITMAP", 0xC0: "$REPARSE_POINT",
    0xD0: "$EA_INFORMATION", 0xE0: "$EA", 0x100: "$LOGGED_UTILITY_STREAM",
}  # fmt: skip
SYSTEM_FILES = {
    0: "$MFT", 1: "$MFTMirr", 2: "$LogFile", 3: "$Volume", 4: "$AttrDef", 5: "root",
    6: "$Bitmap", 7: "$Boot", 8: "$BadClus", 9: "$Secure", 10: "$UpCase", 11: "$Extend",
}  # fmt: skip

Run = tuple[int, int | None, int]  # vcn, lcn (None: sparse), clusters


# ------------------------------------------------------------------ boot sector
@dataclass(frozen=True)
class Boot:
    """The fields of a valid NTFS boot sector."""

    pos: int  # where it was read
    bps: int
    cluster: int
    total_sectors: int
    mft_lcn: int
    mirr_lcn: int
    record_size: int
    index_size: int

    @property
    def clusters(self) -> int:
        return self.total_sectors * self.bps // self.cluster


def _size_field(raw: int, cluster: int) -> int:
    """Clusters per record / index block: positive = clusters, negative = 2**-x bytes."""
    value = raw - 256 if raw > 127 else raw
    return value * cluster if value > 0 else 1 << -value


def parse_boot(data: bytes | None, pos: int = 0) -> Boot | None:
    """A sane boot sector (the checks of libntfs-3g's ``ntfs_boot_sector_is_ntfs``), or None."""
    if data is None or len(data) < 512 or data[3:11] != OEM_ID:
        return None
    bps, spc_raw, reserved, fats, root_entries, sectors = struct.unpack_from("<HBHBHH", data, 11)
    (fat_sectors,) = struct.unpack_from("<H", data, 0x16)
    (large,) = struct.unpack_from("<I", data, 0x20)
    total, mft_lcn, mirr_lcn = struct.unpack_from("<QQQ", data, 0x28)
    if bps not in (256, 512, 1024, 2048, 4096) or reserved or fats or root_entries:
        return None
    if sectors or fat_sectors or large or total == 0:
        return None
    spc = spc_raw if spc_raw <= 0x80 else 1 << (256 - spc_raw) if spc_raw >= 0xF4 else 0
    if spc == 0 or spc & (spc - 1) or bps * spc > 2 << 20:
        return None
    cluster = bps * spc
    record = _size_field(data[0x40], cluster)
    index = _size_field(data[0x44], cluster)
    clusters = total * bps // cluster
    for size in (record, index):
        if size < 512 or size > 1 << 16 or size & (size - 1):
            return None
    if not (0 < mft_lcn < clusters and 0 < mirr_lcn < clusters):
        return None
    return Boot(pos, bps, cluster, total, mft_lcn, mirr_lcn, record, index)


def find_boot(vol: Volume) -> tuple[Boot | None, bool]:
    """:func:`_read_boot`, kept in the volume's memo (so that probe then plan read once)."""
    found = vol.memo.get("ntfs:boot")
    if found is None:
        found = vol.memo["ntfs:boot"] = _read_boot(vol)
    return found  # type: ignore[return-value]


def _read_boot(vol: Volume) -> tuple[Boot | None, bool]:
    """The boot sector, or the backup in the last sector; and whether the backup was used.

    The backup is tried only when sector 0 is unreadable, blank, or a damaged NTFS boot sector,
    so that a stale backup left at the end of a reformatted partition does not win.
    """
    first = vol.read(0, 512)
    boot = parse_boot(first)
    if boot is not None:
        return boot, False
    if first is not None and first[3:11] != OEM_ID and any(first):
        return None, False
    for bps in NTFS_BACKUP_SECTORS:
        pos = vol.size - bps
        backup = parse_boot(vol.read(pos, 512), pos) if pos > 0 else None
        if backup is not None and backup.bps == bps and backup.total_sectors * bps <= pos:
            return backup, True
    return None, False


# ------------------------------------------------------------------ records and attributes
def apply_fixups(buf: bytearray, magic: bytes) -> bool:
    """Check ``magic`` and undo the update sequence in place; False if torn or corrupt."""
    if len(buf) < BLOCK or len(buf) % BLOCK or buf[:4] != magic:
        return False
    usa_ofs, usa_count = struct.unpack_from("<HH", buf, 4)
    blocks = len(buf) // BLOCK
    if usa_count != blocks + 1 or usa_ofs < 8 or usa_ofs & 1 or usa_ofs + 2 * usa_count > 510:
        return False
    usn = buf[usa_ofs : usa_ofs + 2]
    for i in range(blocks):
        end = (i + 1) * BLOCK
        if buf[end - 2 : end] != usn:
            return False
        buf[end - 2 : end] = buf[usa_ofs + 2 + 2 * i : usa_ofs + 4 + 2 * i]
    return True


def decode_runs(data: bytes, pos: int, end: int, vcn: int, clusters: int) -> list[Run] | None:
    """The mapping pairs at ``data[pos:end]``, or None if they are corrupt."""
    runs: list[Run] = []
    lcn = 0
    while pos < end:
        head = data[pos]
        if head == 0:
            return runs
        nlen, noff = head & 0x0F, head >> 4
        if not 0 < nlen <= 8 or noff > 8 or pos + 1 + nlen + noff > end:
            return None
        length = int.from_bytes(data[pos + 1 : pos + 1 + nlen], "little", signed=True)
        if length <= 0:
            return None
        if noff:
            lcn += int.from_bytes(
                data[pos + 1 + nlen : pos + 1 + nlen + noff], "little", signed=True
            )
            if lcn < 0 or lcn + length > clusters:
                return None
            runs.append((vcn, lcn, length))
        else:
            runs.append((vcn, None, length))
        vcn += length
        pos += 1 + nlen + noff
    return None


@dataclass
class Attr:
    """One attribute: resident ``value`` or non-resident ``runs`` (None: corrupt runlist)."""

    type: int
    name: str
    value: bytes | None
    runs: list[Run] | None = None
    lowest_vcn: int = 0
    alloc_size: int = 0
    data_size: int = 0


@dataclass
class Record:
    """A checked MFT record."""

    number: int
    flags: int
    base_ref: int  # 0 for a base record, else the base record's reference
    attrs: list[Attr]
    complete: bool  # False: the attribute chain ended in corruption

    @property
    def owner(self) -> int:
        return self.base_ref & REF_MASK if self.base_ref else self.number


def _parse_attr(buf: bytes, pos: int, end: int, clusters: int) -> tuple[Attr, int] | None:
    atype, length, nonres, name_len, name_ofs = struct.unpack_from("<IIBBH", buf, pos)
    if length < 24 or length & 7 or pos + length > end or name_ofs + 2 * name_len > length:
        return None
    name = bytes(buf[pos + name_ofs : pos + name_ofs + 2 * name_len]).decode("utf-16-le", "replace")
    if not nonres:
        vlen, vofs = struct.unpack_from("<IH", buf, pos + 16)
        if vofs + vlen > length:
            return None
        return Attr(atype, name, bytes(buf[pos + vofs : pos + vofs + vlen])), length
    if length < 64:
        return None
    lowest, highest, mp_ofs = struct.unpack_from("<qqH", buf, pos + 16)
    alloc, size = struct.unpack_from("<qq", buf, pos + 40)
    if not 64 <= mp_ofs <= length or lowest < 0 or highest < lowest - 1 or min(alloc, size) < 0:
        return None
    runs = decode_runs(buf, pos + mp_ofs, pos + length, lowest, clusters)
    return Attr(atype, name, None, runs, lowest, alloc, size), length


def parse_record(buf: bytearray, number: int, clusters: int) -> Record | None:
    """A checked MFT record (fixups applied to ``buf``), or None if it is not one."""
    if not apply_fixups(buf, b"FILE"):
        return None
    usa_ofs = struct.unpack_from("<H", buf, 4)[0]
    attrs_ofs, flags, used, alloc = struct.unpack_from("<HHII", buf, 20)
    base_ref = struct.unpack_from("<Q", buf, 32)[0]
    if alloc != len(buf) or not 24 <= attrs_ofs < used <= len(buf) or attrs_ofs & 7:
        return None
    if usa_ofs >= 0x30 and struct.unpack_from("<I", buf, 44)[0] != number & 0xFFFFFFFF:
        return None  # the record says it is another one: a misplaced read
    attrs: list[Attr] = []
    pos = attrs_ofs
    for _ in range(len(buf) // 24):
        if pos + 4 <= used and struct.unpack_from("<I", buf, pos)[0] == AT_END:
            return Record(number, flags, base_ref, attrs, True)
        parsed = _parse_attr(bytes(buf), pos, used, clusters) if pos + 24 <= used else None
        if parsed is None:
            break
        attrs.append(parsed[0])
        pos += parsed[1]
    return Record(number, flags, base_ref, attrs, False)


def parse_attribute_list(data: bytes) -> Iterator[tuple[int, str, int, int]]:
    """``(type, name, lowest_vcn, record)`` of each entry of an $ATTRIBUTE_LIST value."""
    pos = 0
    while pos + 26 <= len(data):
        atype, length, name_len, name_ofs, lowest, ref = struct.unpack_from("<IHBBQQ", data, pos)
        if length < 26 or pos + length > len(data) or name_ofs + 2 * name_len > length:
            return
        raw = data[pos + name_ofs : pos + name_ofs + 2 * name_len]
        yield atype, raw.decode("utf-16-le", "replace"), lowest, ref & REF_MASK
        pos += length


def _parent(attr: Attr) -> int | None:
    """The parent directory's record number in a resident $FILE_NAME value."""
    if attr.value is None or len(attr.value) < 8:
        return None
    return struct.unpack_from("<Q", attr.value)[0] & REF_MASK


# ------------------------------------------------------------------ runlists
class Runlist:
    """An attribute's runs (from one or more segments), mapped from stream bytes to volume."""

    def __init__(self, cluster: int, runs: list[Run] | None = None) -> None:
        self.cluster = cluster
        self.runs: list[Run] = []
        self.starts: list[int] = []
        self.extend(runs or [])

    def extend(self, runs: list[Run]) -> None:
        merged = {r[0]: r for r in self.runs}
        merged.update({r[0]: r for r in runs})
        self.runs = sorted(merged.values())
        self.starts = [r[0] for r in self.runs]

    @property
    def clusters(self) -> int:
        return self.runs[-1][0] + self.runs[-1][2] if self.runs else 0

    def pieces(self, offset: int, size: int) -> list[tuple[int | None, int]] | None:
        """Volume ``(pos, size)`` pieces of stream bytes ``[offset, offset+size)`` (pos None:
        sparse); None if a part is not mapped."""
        c = self.cluster
        i = max(0, bisect.bisect_right(self.starts, offset // c) - 1)
        out: list[tuple[int | None, int]] = []
        want, end = offset, offset + size
        while want < end and i < len(self.runs):
            vcn, lcn, length = self.runs[i]
            if vcn * c > want:
                return None
            stop = min(end, (vcn + length) * c)
            if stop > want:
                out.append((None if lcn is None else lcn * c + want - vcn * c, stop - want))
                want = stop
            i += 1
        return out if want >= end else None

    def areas(self, lo: int = 0, hi: int | None = None) -> Iterator[tuple[int, int]]:
        """Volume ``(pos, size)`` of the allocated clusters of stream bytes ``[lo, hi)``."""
        c = self.cluster
        for vcn, lcn, length in self.runs:
            s = max(vcn * c, lo)
            e = (vcn + length) * c if hi is None else min((vcn + length) * c, hi)
            if lcn is not None and e > s:
                yield lcn * c + s - vcn * c, e - s


@dataclass
class Index:
    """A named index of one file: its allocation's runs, block size and bitmap."""

    block_size: int
    runs: list[Run] = field(default_factory=list)
    alloc: int = 0
    bitmap: Attr | None = None


# ------------------------------------------------------------------ the walk
class NtfsPlanner:
    """One walk of one NTFS volume."""

    def __init__(self, vol: Volume, boot: Boot) -> None:
        self.vol = vol
        self.boot = boot
        self.rs = boot.record_size
        self.head = SYSTEM_RECORDS * self.rs  # records 0-23 at the $MFT LCN
        self.mft = Runlist(boot.cluster)
        self.mft_records = 0
        self.cache: dict[int, Record | None] = {}  # records read before the scan
        self.indexes: dict[tuple[int, str], Index] = {}
        self.extend_children: set[int] = set()
        self.mft_areas: list[tuple[int, int]] = []
        self.bad_records: list[int] = []
        self.damaged: list[int] = []  # records with corrupt attributes or runlists
        self.index_budget = 4096  # INDX blocks to check; grows with the records found

    # -------------------------------------------------------------- reading
    def note(self, text: str) -> None:
        self.vol.plan.note(f"ntfs: {text}")

    def read_pieces(self, pieces: list[tuple[int | None, int]]) -> bytearray | None:
        out = bytearray()
        for pos, size in pieces:
            data = bytes(size) if pos is None else self.vol.read(pos, size)
            if data is None:
                return None
            out += data
        return out

    def read_stream(self, attr: Attr, limit: int, fill: int) -> tuple[bytearray, list[int]]:
        """An attribute's value (at most ``limit`` bytes), unreadable chunks as ``fill`` bytes;
        and the offsets of those chunks."""
        if attr.value is not None:
            return bytearray(attr.value[:limit]), []
        runs = Runlist(self.boot.cluster, attr.runs or [])
        size = min(attr.data_size, limit, runs.clusters * self.boot.cluster)
        out, missing = bytearray(), []
        for off in range(0, size, CHUNK):
            n = min(CHUNK, size - off)
            pieces = runs.pieces(off, n)
            data = self.read_pieces(pieces) if pieces is not None else None
            if data is None:
                data = bytearray([fill]) * n
                missing.append(off)
            out += data
        return out, missing

    def record_at(self, pos: int, number: int) -> Record | None:
        data = self.vol.read(pos, self.rs)
        return None if data is None else parse_record(bytearray(data), number, self.boot.clusters)

    def mirror_record(self, number: int) -> Record | None:
        mirror = self.boot.mirr_lcn * self.boot.cluster + number * self.rs
        rec = self.record_at(mirror, number)
        self.note(
            f"MFT record {number} unreadable or invalid; "
            + ("using its $MFTMirr copy" if rec is not None else "its $MFTMirr copy too")
        )
        return rec

    # -------------------------------------------------------------- $MFT
    def load_mft(self) -> Attr | None:
        """Record 0 (or its mirror) and its extension records: the MFT runlist and $BITMAP."""
        b = self.boot
        rec = self.record_at(b.mft_lcn * b.cluster, MFT)
        if rec is None:
            rec = self.mirror_record(MFT)
        self.cache[MFT] = rec
        if rec is None:
            return None
        attrs = list(rec.attrs)
        self.take_mft_data(attrs)
        for attr in rec.attrs:
            if attr.type == AT_ATTRIBUTE_LIST:
                attrs += self.mft_extensions(attr)
        bitmap = next((a for a in attrs if a.type == AT_BITMAP and not a.name), None)
        first = next(
            (a for a in attrs if a.type == AT_DATA and not a.name and a.lowest_vcn == 0), None
        )
        if first is not None:
            mapped = sum(n for _, lcn, n in self.mft.runs if lcn is not None) * b.cluster
            self.mft_records = min(first.data_size, mapped, self.vol.size) // self.rs
        return bitmap

    def take_mft_data(self, attrs: list[Attr]) -> None:
        for attr in attrs:
            if attr.type == AT_DATA and not attr.name and attr.runs:
                self.mft.extend(attr.runs)

    def mft_extensions(self, attr: Attr) -> list[Attr]:
        """The attributes in $MFT's extension records, in the order of its runlist."""
        data, missing = self.read_stream(attr, MAX_LIST, 0)
        if missing:
            self.note("$MFT attribute list partly unreadable")
        entries = sorted(
            set(parse_attribute_list(bytes(data))), key=lambda e: (e[0] != AT_DATA, e[2])
        )
        found: list[Attr] = []
        for _atype, _name, _vcn, ref in entries:
            if ref == MFT or ref in self.cache:
                continue
            rec = self.fetch(ref)[0]
            self.cache[ref] = rec
            if rec is None or not rec.base_ref or rec.owner != MFT:
                self.note(f"$MFT extension record {ref} unreadable or invalid")
                continue
            for pos, size in self.record_pieces(ref):
                self.vol.add(pos, size, P1, "ntfs $MFT extension record")
            self.take_mft_data(rec.attrs)
            found += rec.attrs
        return found

    def record_pieces(self, number: int) -> list[tuple[int, int]]:
        pieces = self.mft.pieces(number * self.rs, self.rs) or []
        return [(p, n) for p, n in pieces if p is not None]

    def mft_bitmap(self, attr: Attr | None) -> tuple[bytearray, list[tuple[int, int]]]:
        """$MFT's $BITMAP (unreadable parts all ones) and the unknown record ranges."""
        nbytes = (self.mft_records + 7) // 8
        if attr is None:
            self.note("$MFT has no readable $BITMAP; scanning every record")
            return bytearray(b"\xff") * nbytes, [(0, self.mft_records)]
        data, missing = self.read_stream(attr, nbytes, 0xFF)
        unknown = [(off * 8, min(off + CHUNK, nbytes) * 8) for off in missing]
        if len(data) < nbytes:
            unknown.append((len(data) * 8, nbytes * 8))
            data += b"\xff" * (nbytes - len(data))
        if unknown:
            self.note(
                f"$MFT $BITMAP partly unreadable; scanning {len(unknown)} range(s) of records"
            )
        return data, unknown

    def guess_mft(self) -> None:
        """No record 0 anywhere: assume one MFT extent at the boot sector's LCN."""
        b = self.boot
        self.mft = Runlist(b.cluster, [(0, b.mft_lcn, b.clusters - b.mft_lcn)])
        self.mft_records = (b.clusters - b.mft_lcn) * b.cluster // self.rs
        self.note("$MFT record 0 lost; scanning records contiguously from the $MFT LCN")

    # -------------------------------------------------------------- the scan
    def candidates(self, bitmap: bytearray) -> Iterator[int]:
        for i, byte in enumerate(bitmap):
            if byte:
                for bit in range(8):
                    n = i * 8 + bit
                    if byte >> bit & 1 and n < self.mft_records:
                        yield n

    def batches(self, numbers: Iterator[int]) -> Iterator[tuple[int, int, int]]:
        """``(pos, first, count)`` runs of records contiguous on disk, at most CHUNK bytes."""
        first = count = pos0 = 0
        for n in numbers:
            pieces = self.mft.pieces(n * self.rs, self.rs)
            pos = pieces[0][0] if pieces and len(pieces) == 1 else None
            if count and (
                n in self.cache
                or pos != pos0 + count * self.rs
                or n != first + count
                or (count + 1) * self.rs > CHUNK
            ):
                yield pos0, first, count
                count = 0
            if pos is None or n in self.cache:
                yield -1, n, 1
                continue
            if not count:
                first, pos0 = n, pos
            count += 1
        if count:
            yield pos0, first, count

    def scan(self, numbers: Iterator[int], unknown: list[tuple[int, int]], guess: bool) -> None:
        """Read the records ``numbers``, in batches of records contiguous on disk."""
        streak = 0
        for pos, first, count in self.batches(numbers):
            data = self.vol.read(pos, count * self.rs) if pos >= 0 and count > 1 else None
            for n in range(first, first + count):
                if data is not None:
                    raw = bytearray(data[(n - first) * self.rs : (n - first + 1) * self.rs])
                    rec, readable = parse_record(raw, n, self.boot.clusters), True
                    if rec is None and n < MIRROR_RECORDS:
                        rec = self.mirror_record(n)
                else:
                    rec, readable = self.fetch(n)
                in_use = rec is not None and bool(rec.flags & IN_USE)
                streak = 0 if in_use else streak + 1
                self.account(n, rec if in_use else None, readable, unknown)
                if guess and n >= SYSTEM_RECORDS and streak >= GUESS_STREAK:
                    return

    def fetch(self, n: int) -> tuple[Record | None, bool]:
        """Record ``n`` read on its own; and whether its bytes could be read at all."""
        if n in self.cache:
            return self.cache[n], True
        pieces = self.mft.pieces(n * self.rs, self.rs)
        data = (
            self.read_pieces(pieces) if pieces and all(p is not None for p, _ in pieces) else None
        )
        rec = None if data is None else parse_record(data, n, self.boot.clusters)
        if rec is None and n < MIRROR_RECORDS:
            rec = self.mirror_record(n)
        return rec, data is not None

    def account(
        self, n: int, rec: Record | None, readable: bool, unknown: list[tuple[int, int]]
    ) -> None:
        """Plan record ``n`` (None: not in use or not valid) and walk it if it is in use."""
        known = not any(lo <= n < hi for lo, hi in unknown)
        if known or rec is not None or not readable:
            self.mft_areas += self.record_pieces(n)
        if rec is not None:
            self.record(rec)
        elif known or not readable:
            self.bad_records.append(n)

    def record(self, rec: Record) -> None:
        """Count and plan one in-use record."""
        plan = self.vol.plan
        plan.count("ntfs:records")
        self.index_budget += 8
        if not rec.complete:
            self.damaged.append(rec.number)
        if not rec.base_ref:
            plan.count("ntfs:directories" if rec.flags & DIRECTORY else "ntfs:files")
        for attr in rec.attrs:
            if attr.type == AT_FILE_NAME and _parent(attr) == EXTEND:
                self.extend_children.add(rec.owner)
            self.collect_index(rec.owner, attr)
            if attr.value is None:
                self.plan_attr(rec.owner, attr)

    def collect_index(self, owner: int, attr: Attr) -> None:
        key = (owner, attr.name)
        if attr.type == AT_INDEX_ROOT and attr.value is not None and len(attr.value) >= 16:
            size = struct.unpack_from("<I", attr.value, 8)[0]
            if size < 512 or size > 1 << 16 or size & (size - 1):
                size = self.boot.index_size
            self.indexes.setdefault(key, Index(size)).block_size = size
        elif attr.type == AT_INDEX_ALLOCATION and attr.runs is not None:
            index = self.indexes.setdefault(key, Index(self.boot.index_size))
            index.runs += attr.runs
            if attr.lowest_vcn == 0:
                index.alloc = attr.data_size
        elif attr.type == AT_BITMAP and (owner != MFT or attr.name):
            self.indexes.setdefault(key, Index(self.boot.index_size)).bitmap = attr

    # -------------------------------------------------------------- tiers
    def plan_attr(self, owner: int, attr: Attr) -> None:
        """Plan a non-resident attribute's clusters by what it is and whose it is."""
        if attr.runs is None:
            self.damaged.append(owner)
            return
        runs = Runlist(self.boot.cluster, attr.runs)
        label = SYSTEM_FILES.get(owner, "system file" if owner < SYSTEM_RECORDS else "")
        if attr.type != AT_DATA:
            kind = ATTR_NAMES.get(attr.type, f"attribute {attr.type:#x}")
            tier = P1 if owner == MFT else P2
            self.add_runs(runs.areas(), tier, f"{label} {kind}".lstrip())
        elif owner in (MFT, BADCLUS):
            return  # the MFT is planned record by record; $BadClus:$Bad holds the bad clusters
        elif owner == LOGFILE:
            self.add_runs(runs.areas(0, LOGFILE_RESTART), P2, "$LogFile restart pages")
            self.add_runs(runs.areas(LOGFILE_RESTART), P3, "$LogFile")
        elif owner == MFTMIRR:
            self.add_runs(runs.areas(), P3, "$MFTMirr")
        elif owner == BITMAP_FILE:
            self.add_runs(runs.areas(), P1, "$Bitmap")
        elif owner in self.extend_children and attr.name == "$J":
            self.add_runs(runs.areas(), P3, "$UsnJrnl:$J")
        elif owner < SYSTEM_RECORDS or owner in self.extend_children:
            label = label or "$Extend file"
            self.add_runs(runs.areas(), P2, f"{label}:{attr.name}" if attr.name else label)
        else:
            self.add_runs(runs.areas(), P4, "file stream" if attr.name else "file data")

    def add_runs(self, areas: Iterator[tuple[int, int]], tier: int, what: str) -> None:
        for pos, size in areas:
            self.vol.add(pos, size, tier, f"ntfs {what}")

    def plan_fixed(self, from_backup: bool) -> None:
        """Boot sectors, the first records and the mirror, wherever the walk may fail."""
        b, vol = self.boot, self.vol
        vol.add(0, b.bps, P0, "ntfs boot sector")
        vol.add(b.total_sectors * b.bps, b.bps, P0, "ntfs backup boot sector")
        if vol.size - b.bps != b.total_sectors * b.bps:
            vol.add(vol.size - b.bps, b.bps, P0, "ntfs last sector")
        if from_backup:
            self.note("boot sector unreadable or invalid; using the backup boot sector")
        vol.add(b.mft_lcn * b.cluster, self.head, P1, "ntfs MFT records 0-23")
        mirror = max(MIRROR_RECORDS * self.rs, b.cluster)
        vol.add(b.mirr_lcn * b.cluster, mirror, P3, "ntfs $MFTMirr")

    def plan_mft(self) -> None:
        """Records 0-23 (where not at the MFT LCN already) P1, the in-use records P2."""
        lo = self.boot.mft_lcn * self.boot.cluster
        head = [
            (pos, size)
            for n in range(min(SYSTEM_RECORDS, self.mft_records))
            for pos, size in self.record_pieces(n)
            if not lo <= pos < lo + self.head
        ]
        self.add_spans(head, P1, "ntfs MFT records 0-23")
        self.add_spans(self.mft_areas, P2, "ntfs in-use MFT records")

    def add_spans(self, pieces: list[tuple[int, int]], tier: int, what: str) -> None:
        """Plan ``(pos, size)`` pieces, adjacent ones as one area."""
        spans: list[list[int]] = []
        for pos, size in sorted(pieces):
            if spans and pos <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], pos + size)
            else:
                spans.append([pos, pos + size])
        for s, e in spans:
            self.vol.add(s, e - s, tier, what)

    # -------------------------------------------------------------- index blocks
    def check_indexes(self) -> None:
        """Read and check the in-use INDX blocks of every index allocation."""
        for (owner, name), index in self.indexes.items():
            if not index.runs:
                continue
            runs = Runlist(self.boot.cluster, index.runs)
            bs = index.block_size
            mapped = sum(n for _, lcn, n in runs.runs if lcn is not None) * self.boot.cluster
            blocks = min(index.alloc or mapped, mapped) // bs
            bitmap = None
            if index.bitmap is not None:
                bitmap, missing = self.read_stream(
                    index.bitmap, min((blocks + 7) // 8, MAX_LIST), 0xFF
                )
                if missing:
                    self.note(f"record {owner}: index bitmap {name!r} unreadable")
            for i in range(blocks):
                if bitmap is None or (i // 8 < len(bitmap) and bitmap[i // 8] >> (i % 8) & 1):
                    if self.index_budget <= 0:
                        self.note("more index blocks than the records justify; not all checked")
                        return
                    self.index_budget -= 1
                    self.check_block(runs, i, bs)

    def check_block(self, runs: Runlist, i: int, bs: int) -> None:
        pieces = runs.pieces(i * bs, bs)
        if not pieces or any(p is None for p, _ in pieces):
            return
        data = self.read_pieces(pieces)
        shift = self.boot.cluster if bs >= self.boot.cluster else BLOCK
        ok = data is not None and apply_fixups(data, b"INDX")
        if ok and data is not None:
            vcn, ofs, length = struct.unpack_from("<QII", data, 16)
            ok = vcn == i * bs // shift and 16 <= ofs < length and 24 + length <= bs
        self.vol.plan.count("ntfs:index_blocks" if ok else "ntfs:bad_index_blocks")

    # -------------------------------------------------------------- all of it
    def run(self, from_backup: bool) -> None:
        self.plan_fixed(from_backup)
        bitmap_attr = self.load_mft()
        guess = not self.mft.runs
        if guess:
            self.guess_mft()
            self.scan(iter(range(self.mft_records)), [(0, self.mft_records)], True)
        else:
            bitmap, unknown = self.mft_bitmap(bitmap_attr)
            self.scan(self.candidates(bitmap), unknown, False)
        self.plan_mft()
        self.check_indexes()
        self.summarise()

    def summarise(self) -> None:
        if self.bad_records:
            self.vol.plan.count("ntfs:bad_records", len(self.bad_records))
            self.note(
                f"{len(self.bad_records)} in-use MFT record(s) unreadable or invalid: "
                + ", ".join(map(str, self.bad_records[:10]))
            )
        if self.damaged:
            self.note(
                f"{len(self.damaged)} record(s) with corrupt attributes or runlists: "
                + ", ".join(map(str, sorted(set(self.damaged))[:10]))
            )


def probe(vol: Volume) -> bool:
    return find_boot(vol)[0] is not None


def plan(vol: Volume) -> None:
    boot, from_backup = find_boot(vol)
    if boot is None:
        vol.plan.note("ntfs: no valid boot sector")
        return
    if boot.total_sectors * boot.bps > vol.size:
        vol.plan.note("ntfs: the volume is smaller than its boot sector says")
    NtfsPlanner(vol, boot).run(from_backup)
