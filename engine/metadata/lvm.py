"""LVM2 physical volumes for the metadata planner: the label, the metadata areas, and each
logical volume planned as a volume of its own.

The chain (lvm2's ``lib/label`` and ``lib/format_text``; what ``pvck --dump headers`` shows):

* the label is in one of the first four sectors (normally sector 1): ``LABELONE``, its sector
  number, a CRC of the rest of the sector and the offset of the PV header, which holds the PV's
  UUID, its size, the list of data areas and the list of metadata areas (``offset, size``);
* a metadata area starts with a 512-byte header (a CRC, the magic ``" LVM2 x[5A%r0N*>"``, its
  own start and size) whose first ``raw_locn`` points at the current metadata text, with the
  text's CRC; the rest of the area is a circular buffer of older copies, and a text that runs
  past the end of the area goes on right after the header;
* the text (:mod:`engine.metadata.lvm_text`) names the volume group, its extent size, each PV
  with its ``pe_start`` (both in sectors) and each LV with its segments; a linear segment is
  ``type = "striped"``, ``stripe_count = 1``, ``stripes = ["pv0", first extent]``.

Tiers: P0 the label sector with the PV header, the first metadata area's header and its current
text; P3 the rest of that area (older copies) and the whole second area (normally at the end of
the PV). Fallback: when the first area's header or text is unreadable, fails its CRC or does not
parse, the second area is used (its header and text then P0), with a note. Each LV that is one
range of this PV (one linear segment, or linear segments contiguous here) is probed and planned
as a volume, named ``VG-LV``, by :func:`engine.metadata.planner.plan_volume`; any other LV gets a
note (striped, RAID, thin and mirrored LVs are not one range). Counts: ``lvm:logical volumes``
(in the metadata) and ``lvm:logical volumes planned``.
"""

from __future__ import annotations

import binascii
import struct
import threading
from dataclasses import dataclass
from itertools import pairwise

from engine.map.ranges import subtract
from engine.metadata import lvm_text
from engine.metadata.lvm_text import Section, integer, section, string
from engine.metadata.signatures import LVM_LABEL, LVM_LABEL_SECTORS, LVM_TYPE
from engine.metadata.volume import P0, P3, Plan, Reader, Volume

NAME = "lvm"
SECTOR = 512
LABEL_HEADER = 32  # id, sector, crc, offset, type
ID_LEN = 32
MDA_HEADER_SIZE = 512
MDA_MAGIC = b" LVM2 x[5A%r0N*>"
MDA_VERSION = 1
RAW_LOCN_IGNORED = 1  # pvchange --metadataignore
INITIAL_CRC = 0xF597A6CF
MAX_TEXT = 64 << 20  # largest metadata text read
MAX_NESTING = 8  # PVs inside LVs inside PVs...
_MEMO = "lvm_label"
_nesting = threading.local()


def calc_crc(data: bytes, initial: int = INITIAL_CRC) -> int:
    """lvm2's ``calc_crc``: the CRC-32 of zlib (reflected 0xEDB88320) without its inversions."""
    return binascii.crc32(data, initial ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


# ------------------------------------------------------------------ label and PV header
@dataclass(frozen=True)
class Label:
    """An LVM2 label with its PV header. Positions and sizes are bytes from the PV's start."""

    sector: int
    crc_ok: bool
    uuid: str  # 32 characters, without the dashes of the metadata text
    device_size: int
    data_areas: tuple[tuple[int, int], ...]  # (offset, size); size 0: to the end
    metadata_areas: tuple[tuple[int, int], ...]


def _locations(raw: bytes, pos: int) -> tuple[list[tuple[int, int]], int] | None:
    """A list of ``disk_locn`` up to its terminator (offset 0), and the position after it."""
    out: list[tuple[int, int]] = []
    while pos + 16 <= len(raw):
        offset, size = struct.unpack_from("<QQ", raw, pos)
        pos += 16
        if offset == 0:
            return out, pos
        out.append((offset, size))
    return None


def parse_label(raw: bytes, sector: int) -> Label | None:
    """The label in the 512-byte ``raw`` read at ``sector``, or None if it is not one."""
    if len(raw) < SECTOR or raw[:8] != LVM_LABEL or raw[24:32] != LVM_TYPE:
        return None
    number, crc, offset = struct.unpack_from("<QII", raw, 8)
    if number != sector or not LABEL_HEADER <= offset <= SECTOR - ID_LEN - 8 - 32:
        return None
    (device_size,) = struct.unpack_from("<Q", raw, offset + ID_LEN)
    data = _locations(raw, offset + ID_LEN + 8)
    if data is None:
        return None
    mdas = _locations(raw, data[1])
    if mdas is None:
        return None
    return Label(
        sector,
        calc_crc(raw[20:SECTOR]) == crc,
        raw[offset : offset + ID_LEN].decode("latin-1"),
        device_size,
        tuple(data[0]),
        tuple(mdas[0]),
    )


def find_label(raw: bytes | None) -> Label | None:
    """The first label in the first four sectors (``raw``: what :func:`signatures.lvm` reads)."""
    if raw is None:
        return None
    for s in range(LVM_LABEL_SECTORS):
        label = parse_label(raw[s * SECTOR : (s + 1) * SECTOR], s)
        if label is not None:
            return label
    return None


def probe(vol: Volume) -> bool:
    """An LVM2 label with a well-formed PV header (its CRC is checked by :func:`plan`)."""
    label = find_label(vol.read(0, SECTOR * LVM_LABEL_SECTORS))
    if label is None:
        return False
    vol.memo[_MEMO] = label
    return True


# ------------------------------------------------------------------ metadata areas
@dataclass
class Metadata:
    """What one metadata area gave: the pieces of its current text, the VG, or a problem."""

    start: int
    size: int
    pieces: list[tuple[int, int]]  # (pos, size) of the current text, in order
    vg: tuple[str, Section] | None = None
    problem: str = ""


def _text_pieces(start: int, size: int, raw: bytes) -> list[tuple[int, int]] | str:
    """Where the current text is (the first ``raw_locn`` of the header ``raw``), or why not."""
    version, hstart, hsize = struct.unpack_from("<IQQ", raw, 20)
    if version != MDA_VERSION or hstart != start or not MDA_HEADER_SIZE < hsize <= size:
        return f"header inconsistent (version {version}, start {hstart}, size {hsize})"
    offset, length, _crc, flags = struct.unpack_from("<QQII", raw, 40)
    if offset == 0 and length == 0:
        return "no metadata (a PV in no volume group)"
    if flags & RAW_LOCN_IGNORED:
        return "marked ignored (metadataignore)"
    if not MDA_HEADER_SIZE <= offset < hsize or not 0 < length <= min(MAX_TEXT, hsize - 512):
        return f"text location invalid (offset {offset}, size {length})"
    first = min(length, hsize - offset)
    pieces = [(start + offset, first)]
    if first < length:  # wrapped around the circular buffer
        pieces.append((start + MDA_HEADER_SIZE, length - first))
    return pieces


def read_metadata(vol: Volume, start: int, size: int) -> Metadata:
    """The header of the area at ``start``, its current text, checked and parsed."""
    md = Metadata(start, size, [])
    raw = vol.read(start, MDA_HEADER_SIZE)
    if raw is None:
        md.problem = "header unreadable"
    elif raw[4:20] != MDA_MAGIC:
        md.problem = "no metadata area header"
    elif calc_crc(raw[4:]) != struct.unpack_from("<I", raw)[0]:
        md.problem = "header checksum wrong"
    else:
        found = _text_pieces(start, size, raw)
        if isinstance(found, str):
            md.problem = found
        else:
            md.pieces = found
            md.problem = _parse_text(vol, md, struct.unpack_from("<I", raw, 56)[0])
    return md


def _parse_text(vol: Volume, md: Metadata, crc: int) -> str:
    """Read, check and parse the text of ``md.pieces`` into ``md.vg``; the problem, or ''."""
    parts = [vol.read(pos, n) for pos, n in md.pieces]
    if any(p is None for p in parts):
        return "metadata text unreadable"
    text = b"".join(p for p in parts if p is not None)
    if calc_crc(text) != crc:
        return "metadata text checksum wrong"
    try:
        tree = lvm_text.parse(text.decode("utf-8", "replace"))
    except lvm_text.TextError as exc:
        return f"metadata text unparsable: {exc}"
    for name, value in tree.items():
        if isinstance(value, dict) and isinstance(value.get("physical_volumes"), dict):
            md.vg = (name, value)
            return ""
    return "no volume group in the metadata text"


def _plan_areas(vol: Volume, areas: list[tuple[int, int]]) -> Metadata | None:
    """Plan the metadata areas and read the first usable one (the others only if needed)."""
    used: Metadata | None = None
    for i, (start, size) in enumerate(areas):
        md = read_metadata(vol, start, size) if used is None else None
        if md is not None and (md.vg is not None or i == 0):
            vol.add(start, MDA_HEADER_SIZE, P0, f"LVM metadata area {i + 1} header")
            for pos, n in md.pieces:
                vol.add(pos, n, P0, "LVM metadata text")
            text = [(pos, pos + n) for pos, n in md.pieces]
            for s, e in subtract([(start + MDA_HEADER_SIZE, start + size)], sorted(text)):
                vol.add(s, e - s, P3, f"LVM metadata area {i + 1} (older copies)")
        else:
            vol.add(start, size, P3, f"LVM metadata area {i + 1}")
        if md is None:
            continue
        if md.vg is not None:
            used = md
            if i > 0:
                _note(vol, f"using metadata area {i + 1} at {start}")
        else:
            _note(vol, f"metadata area {i + 1} at {start}: {md.problem}")
    return used


def _note(vol: Volume, text: str) -> None:
    vol.plan.note(f"lvm at {vol.start}: {text}")


# ------------------------------------------------------------------ logical volumes
def lv_range(lv: Section, pv_name: str) -> tuple[int, int] | str | None:
    """``(first extent, extents)`` of an LV that is one range of ``pv_name``; None if no part
    of it is there, else why it is not one range."""
    segs = [v for k, v in lv.items() if k.startswith("segment") and isinstance(v, dict)]
    segs.sort(key=lambda s: integer(s, "start_extent") or 0)
    runs: list[tuple[str, int, int, int]] = []  # pv, first extent there, extents, LV extent
    for seg in segs:
        kind, stripes = string(seg, "type"), seg.get("stripes")
        count, first = integer(seg, "extent_count"), integer(seg, "start_extent")
        if kind != "striped" or integer(seg, "stripe_count") != 1:
            return f"a segment of type {kind} ({integer(seg, 'stripe_count') or 0} stripes)"
        if not isinstance(stripes, list) or len(stripes) != 2 or count is None or first is None:
            return "a segment unreadable"
        pv, pe = stripes
        if not isinstance(pv, str) or not isinstance(pe, int) or pe < 0 or count <= 0:
            return "a segment unreadable"
        runs.append((pv, pe, count, first))
    if not runs:
        return "no segments"
    if all(r[0] != pv_name for r in runs):
        return None
    if any(r[0] != pv_name for r in runs):
        return "partly on other PVs (a volume that is not one range)"
    for a, b in pairwise(runs):
        if b[1] != a[1] + a[2] or b[3] != a[3] + a[2]:
            return "segments not contiguous on this PV (a volume that is not one range)"
    if runs[0][3] != 0:
        return "its first extents are missing"
    return runs[0][1], sum(r[2] for r in runs)


def _this_pv(vol: Volume, label: Label, vg: Section) -> tuple[str, Section] | None:
    for name, pv in (section(vg, "physical_volumes") or {}).items():
        if isinstance(pv, dict) and (string(pv, "id") or "").replace("-", "") == label.uuid:
            return name, pv
    _note(vol, f"PV {label.uuid} is not in its volume group's metadata")
    return None


def lv_volumes(vol: Volume, label: Label, vg_name: str, vg: Section) -> list[tuple[str, int, int]]:
    """``(VG-LV, start in the volume, size)`` of each LV that is one range of this PV; the
    others get a note."""
    found = _this_pv(vol, label, vg)
    extent = integer(vg, "extent_size")
    if found is None:
        return []
    pv_name, pv = found
    pe_start = integer(pv, "pe_start")
    if extent is None or extent <= 0 or pe_start is None or pe_start < 0:
        _note(vol, f"volume group {vg_name}: extent_size or pe_start missing")
        return []
    lvs = [(k, v) for k, v in (section(vg, "logical_volumes") or {}).items() if isinstance(v, dict)]
    vol.plan.count("lvm:logical volumes", len(lvs))
    out = []
    for lv_name, lv in lvs:
        name = f"{vg_name}-{lv_name}"
        where = lv_range(lv, pv_name)
        if where is None:
            continue
        if isinstance(where, str):
            _note(vol, f"{name} not planned: {where}")
            continue
        start = (pe_start + where[0] * extent) * SECTOR
        size = where[1] * extent * SECTOR
        if start < SECTOR * LVM_LABEL_SECTORS or start + size > vol.size:
            _note(vol, f"{name} not planned: extents outside the PV")
            continue
        out.append((name, start, size))
    return out


def plan_lvs(vol: Volume, label: Label, vg_name: str, vg: Section) -> None:
    """Plan each LV that is one range of this PV as a volume of its own."""
    from engine.metadata.planner import plan_volume  # the planner imports this module

    for name, start, size in lv_volumes(vol, label, vg_name, vg):
        depth = getattr(_nesting, "depth", 0)
        if depth >= MAX_NESTING:
            _note(vol, f"{name} not planned: PVs nested too deeply")
            continue
        _nesting.depth = depth + 1
        try:
            plan_volume(vol.read_disk, vol.start + start, size, vol.plan, name=name)
        finally:
            _nesting.depth = depth
        vol.plan.count("lvm:logical volumes planned")


def _volume_group(vol: Volume) -> tuple[Label, str, Section] | None:
    """Plan the label and the metadata areas of the PV ``vol``; its label and current volume
    group (name, section), or None (with a note) when they cannot be had."""
    found = vol.memo.get(_MEMO)
    if not isinstance(found, Label):
        found = find_label(vol.read(0, SECTOR * LVM_LABEL_SECTORS))
    label = found
    if label is None:
        _note(vol, "label unreadable")
        return None
    vol.add(label.sector * SECTOR, SECTOR, P0, "LVM label and PV header")
    if not label.crc_ok:
        _note(vol, "label checksum wrong (used anyway)")
    if label.device_size > vol.size:
        _note(vol, f"PV size {label.device_size} past the end of the volume ({vol.size})")
    areas = [(o, n) for o, n in label.metadata_areas if n > MDA_HEADER_SIZE and o + n <= vol.size]
    if len(areas) < len(label.metadata_areas):
        _note(vol, "a metadata area is outside the volume: left out")
    if not areas:
        _note(vol, "no metadata area on this PV: its LVs are planned from another PV")
        return None
    used = _plan_areas(vol, areas)
    if used is None or used.vg is None:
        _note(vol, "no readable volume group metadata: logical volumes not planned")
        return None
    return (label, *used.vg)


def plan(vol: Volume) -> None:
    """Plan the label, the metadata areas and the logical volumes of the PV ``vol``."""
    found = _volume_group(vol)
    if found is not None:
        plan_lvs(vol, *found)


def logical_volumes(read: Reader, start: int, size: int) -> list[tuple[str, int, int]]:
    """The LVs that are one range of the PV on the disk range ``[start, start+size)``, as
    ``(VG-LV, start on the disk, size)``; none when it is no PV or its metadata cannot be read
    (the live mount shows each LV as ``MOUNTPOINT/VG-LV``)."""
    vol = Volume(read, start, size, Plan(start + size))
    if not probe(vol):
        return []
    found = _volume_group(vol)
    if found is None:
        return []
    return [(name, start + pos, n) for name, pos, n in lv_volumes(vol, *found)]
