"""Partition tables: MBR with the EBR chain of logical partitions, and GPT with CRC checks and
the backup header. Pure parsing over a ``read(pos, size) -> bytes | None`` callable, so the
caller decides where bytes come from (the rescued image, rescued through the engine first).

Numbering follows Linux: MBR primaries keep their slot number (1-4), logical partitions count
from 5; GPT partitions are numbered by their entry index + 1.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

Reader = Callable[[int, int], bytes | None]

EXTENDED_TYPES = frozenset({0x05, 0x0F, 0x85})
GPT_PROTECTIVE = 0xEE
GPT_SIGNATURE = b"EFI PART"


@dataclass(frozen=True)
class Partition:
    """One partition: its number, byte range in the disk, and what the table says about it."""

    number: int
    start: int
    size: int
    scheme: str  # "mbr" or "gpt"
    type: str  # MBR type byte as hex ("83") or GPT type GUID
    name: str = ""
    file: str = ""  # the live mount's file name, if not ``p<number>`` (an LV: ``VG-LV``)

    @property
    def end(self) -> int:
        return self.start + self.size

    @property
    def file_name(self) -> str:
        return self.file or f"p{self.number}"


class TableUnreadable(Exception):
    """The bytes needed to read the table are not available (not rescued yet, or bad)."""


def _need(read: Reader, pos: int, size: int) -> bytes:
    data = read(pos, size)
    if data is None or len(data) < size:
        raise TableUnreadable(f"[{pos}, {pos + size}) not available")
    return data


def read_partitions(read: Reader, disk_size: int, sector: int = 512) -> list[Partition]:
    """Parse the partition table of a disk.

    Returns an empty list when the disk has no valid MBR signature.

    Raises:
        TableUnreadable: a sector the table needs could not be read.
    """
    mbr = _need(read, 0, 512)
    if mbr[510:512] != b"\x55\xaa":
        return []
    entries = [struct.unpack_from("<B3xB3xII", mbr, 446 + 16 * i) for i in range(4)]
    if any(e[1] == GPT_PROTECTIVE for e in entries):
        gpt = read_gpt(read, disk_size, sector)
        if gpt is not None:
            return gpt
    return _read_mbr(read, entries, disk_size, sector)


def _read_mbr(
    read: Reader, entries: list[tuple[int, int, int, int]], disk_size: int, sector: int
) -> list[Partition]:
    parts: list[Partition] = []
    extended: tuple[int, int] | None = None
    for i, (_status, ptype, lba, count) in enumerate(entries):
        if ptype == 0 or count == 0:
            continue
        if ptype in EXTENDED_TYPES:
            extended = (lba, count)
            continue
        parts.append(
            _clip(Partition(i + 1, lba * sector, count * sector, "mbr", f"{ptype:02x}"), disk_size)
        )
    if extended is not None:
        parts.extend(_read_logicals(read, extended[0], disk_size, sector))
    return [p for p in parts if p.size > 0]


def _read_logicals(read: Reader, ext_lba: int, disk_size: int, sector: int) -> list[Partition]:
    parts: list[Partition] = []
    ebr_lba = ext_lba
    seen: set[int] = set()
    number = 5
    while ebr_lba not in seen and len(seen) < 128:
        seen.add(ebr_lba)
        ebr = _need(read, ebr_lba * sector, 512)
        if ebr[510:512] != b"\x55\xaa":
            break
        _, ptype, rel, count = struct.unpack_from("<B3xB3xII", ebr, 446)
        if ptype and count:
            start = (ebr_lba + rel) * sector
            parts.append(
                _clip(Partition(number, start, count * sector, "mbr", f"{ptype:02x}"), disk_size)
            )
            number += 1
        _, ntype, nrel, _ = struct.unpack_from("<B3xB3xII", ebr, 446 + 16)
        if ntype not in EXTENDED_TYPES or nrel == 0:
            break
        ebr_lba = ext_lba + nrel
    return parts


def _clip(p: Partition, disk_size: int) -> Partition:
    if disk_size > 0 and p.end > disk_size:
        return Partition(p.number, p.start, max(0, disk_size - p.start), p.scheme, p.type, p.name)
    return p


def _guid(raw: bytes) -> str:
    a, b, c = struct.unpack_from("<IHH", raw)
    return f"{a:08x}-{b:04x}-{c:04x}-{raw[8:10].hex()}-{raw[10:16].hex()}"


def _gpt_header(read: Reader, lba: int, sector: int) -> tuple[bytes, list[Partition]] | None:
    try:
        hdr = _need(read, lba * sector, sector)
    except TableUnreadable:
        return None
    if hdr[:8] != GPT_SIGNATURE:
        return None
    hsize = struct.unpack_from("<I", hdr, 12)[0]
    if not 92 <= hsize <= sector:
        return None
    crc = struct.unpack_from("<I", hdr, 16)[0]
    check = bytearray(hdr[:hsize])
    check[16:20] = b"\0\0\0\0"
    if zlib.crc32(check) != crc:
        return None
    entries_lba, count, esize, ecrc = struct.unpack_from("<QIII", hdr, 72)
    if esize < 128 or count > 4096:
        return None
    try:
        table = _need(read, entries_lba * sector, count * esize)
    except TableUnreadable:
        return None
    if zlib.crc32(table) != ecrc:
        return None
    parts = []
    for i in range(count):
        e = table[i * esize : (i + 1) * esize]
        if e[:16] == b"\0" * 16:
            continue
        first, last = struct.unpack_from("<QQ", e, 32)
        if last < first:
            continue
        name = e[56:128].decode("utf-16-le", "replace").split("\0", 1)[0]
        parts.append(
            Partition(
                i + 1, first * sector, (last - first + 1) * sector, "gpt", _guid(e[:16]), name
            )
        )
    return hdr, parts


def read_gpt(read: Reader, disk_size: int, sector: int) -> list[Partition] | None:
    """The primary GPT, or the backup at the last LBA when the primary is damaged."""
    primary = _gpt_header(read, 1, sector)
    if primary is not None:
        return [_clip(p, disk_size) for p in primary[1]]
    if disk_size <= 0:
        return None
    backup = _gpt_header(read, disk_size // sector - 1, sector)
    if backup is not None:
        return [_clip(p, disk_size) for p in backup[1]]
    return None


def table_ranges(disk_size: int, sector: int = 512) -> list[tuple[int, int]]:
    """Where the tables live, to rescue first: MBR + primary GPT, and the backup GPT."""
    ranges = [(0, min(disk_size, 34 * sector))]
    if disk_size > 34 * sector:
        ranges.append((max(34 * sector, disk_size - 33 * sector), disk_size))
    return ranges
