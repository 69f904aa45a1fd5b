"""LUKS1 and LUKS2 for the metadata planner: the headers, the key slot areas, then the payload.

An encrypted volume's metadata is small but irreplaceable: without the header and the key
material of a key slot, the whole payload is noise. The layouts (cryptsetup's on-disk format
specifications; what ``cryptsetup luksDump`` reads, measured):

* LUKS1: the 592-byte ``phdr`` at 0 (big-endian: ``payloadOffset`` and ``keyBytes`` at 104,
  then 8 key slots of 48 bytes at 208: state, iterations, salt, ``keyMaterialOffset`` in
  sectors, stripes). A slot's area is ``keyBytes * stripes`` bytes rounded up to 512-byte
  sectors. There is no second copy of the header.
* LUKS2: a 4 KiB binary header and its JSON area (together ``hdr_size``, 16 KiB to 4 MiB) at 0,
  the same again at ``hdr_size`` (magic ``SKUL\\xba\\xbe``), then the key slots area. The
  binary header carries a checksum of both parts (``checksum_alg``, usually sha256) and a
  ``seqid``; the JSON names the key slot areas (``keyslots.*.area``: offset, size), the data
  segments (``segments.*``: offset, size or ``"dynamic"``) and the sizes (``config``).

Tiers: P0 the header in use and the areas of the active key slots (LUKS2: every key slot the
JSON lists); P3 LUKS2's other header copy; P4 the encrypted payload (each data segment; LUKS1
from ``payloadOffset`` to the end). Inactive key slot areas are not planned. A payload at
offset 0 means a detached header (the data is on another device): noted, not planned.

Fallbacks (cryptsetup's): a LUKS2 primary header that is unreadable, fails its checksum or its
JSON is replaced by the second copy, found where :func:`engine.metadata.signatures.luks` looks
for it; of two valid copies the one with the higher ``seqid`` is used. Anything unreadable or
insane leads to a note, never an exception. Counts: ``luks:keyslots`` (active key slots
planned), ``luks:segments`` (data segments planned).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field

from engine.errors import DdfsError, Stop
from engine.metadata.signatures import LUKS2_SECOND_MAGIC, LUKS2_SECOND_OFFSETS, LUKS_MAGIC
from engine.metadata.volume import P0, P3, P4, Volume

NAME = "luks"
SECTOR = 512
BINARY_HEADER = 4096  # LUKS2: the binary part of a header; its JSON area follows
PHDR_SIZE = 592  # LUKS1
LUKS1_SLOTS, LUKS1_SLOT_AT, LUKS1_SLOT_SIZE = 8, 208, 48
LUKS1_ACTIVE, LUKS1_DISABLED = 0x00AC71F3, 0x0000DEAD
LUKS1_MAX_KEY = 64  # bytes (512-bit keys): what an insane keyBytes is taken as
LUKS1_STRIPES = 4000  # what cryptsetup writes (and requires): what insane stripes are taken as
CSUM_AT, CSUM_SIZE = 448, 64
_MEMO = "luks"


@dataclass(frozen=True)
class Luks1:
    """A LUKS1 phdr: payload offset (bytes), key size and the slots it could read."""

    payload: int
    key_bytes: int
    slots: list[tuple[int, int, int, int]]  # (index, state, key material offset, stripes)


@dataclass(frozen=True)
class Luks2:
    """A valid LUKS2 header copy: where it is, its size (binary + JSON), seqid and JSON."""

    offset: int
    size: int
    seqid: int
    meta: dict[str, object]


@dataclass
class Found:
    """What the probe found (None: no usable header), and what it has to say about it."""

    header: Luks1 | Luks2 | None
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ module interface
def probe(vol: Volume) -> bool:
    """A LUKS1 header at 0, or a valid LUKS2 header at 0 or (its second copy) at one of the
    places :func:`engine.metadata.signatures.luks` looks; read in the same order as that test,
    so a volume without LUKS is read exactly as the test reads it."""
    return _found(vol).header is not None


def plan(vol: Volume) -> None:
    """Add the areas of the LUKS volume ``vol`` to its plan."""
    found = _found(vol)
    for text in found.notes:
        _note(vol, text)
    hdr = found.header
    if hdr is None:
        _note(vol, "no usable LUKS header (LUKS1 has no second copy); nothing planned")
    elif isinstance(hdr, Luks1):
        _plan1(vol, hdr)
    else:
        _plan2(vol, hdr)


def _note(vol: Volume, text: str) -> None:
    vol.plan.note(f"luks at {vol.start}: {text}")


def _found(vol: Volume) -> Found:
    cached = vol.memo.get(_MEMO)
    if isinstance(cached, Found):
        return cached
    found = Found(None)
    try:
        found.header = _find(vol, found.notes)
    except (DdfsError, Stop):  # the engine's own (a write error, a signal): not ours to keep
        raise
    except Exception as exc:  # never raise: a header this odd is reported, not planned
        found.notes.append(f"header unusable ({type(exc).__name__}: {exc})")
    vol.memo[_MEMO] = found
    return found


def _find(vol: Volume, notes: list[str]) -> Luks1 | Luks2 | None:
    """The header to plan from: the signature test's reads first, then what they lead to."""
    first = vol.read(0, SECTOR)
    if first is None:
        notes.append("primary header (sector 0) unreadable")
    elif first[:6] == LUKS_MAGIC:
        version = struct.unpack_from(">H", first, 6)[0]
        if version == 1:
            return _luks1(vol, first, notes)
        if version != 2:
            notes.append(f"primary header has unknown version {version}")
        else:
            primary = _luks2_at(vol, 0, first, notes)
            if primary is not None:
                return _newest(vol, primary, notes)
    for off in LUKS2_SECOND_OFFSETS:  # as the signature test looks, in its order
        if off + SECTOR <= vol.size:
            raw = vol.read(off, SECTOR)
            if raw is not None and raw[:6] == LUKS2_SECOND_MAGIC:
                second = _luks2_at(vol, off, raw, notes)
                if second is not None:
                    notes.append(f"primary header unusable: using the second header at {off}")
                    return second
    return None


# ------------------------------------------------------------------ LUKS2 headers
def _newest(vol: Volume, primary: Luks2, notes: list[str]) -> Luks2:
    """The primary, unless the second copy is valid and newer (as cryptsetup decides)."""
    theirs: list[str] = []
    second = _luks2_at(vol, primary.size, None, theirs)
    if second is None:
        notes.extend(f"second header: {t}" for t in theirs)
        return primary
    if second.seqid > primary.seqid:
        notes.append(f"second header is newer (seqid {second.seqid} > {primary.seqid}): used")
        return second
    return primary


def _luks2_at(vol: Volume, off: int, head: bytes | None, notes: list[str]) -> Luks2 | None:
    """The LUKS2 header copy at ``off`` if it is readable, consistent and checks."""
    magic = LUKS_MAGIC if off == 0 else LUKS2_SECOND_MAGIC
    where = f"LUKS2 header at {off}"
    if head is None:
        head = vol.read(off, SECTOR)
    if head is None:
        notes.append(f"{where} unreadable")
        return None
    version, size, seqid = struct.unpack_from(">HQQ", head, 6)
    hdr_offset = struct.unpack_from(">Q", head, 256)[0]
    if head[:6] != magic or version != 2:
        notes.append(f"{where}: no LUKS2 magic")
        return None
    if size not in LUKS2_SECOND_OFFSETS or hdr_offset != off or (off and off != size):
        notes.append(f"{where}: insane size {size} or offset {hdr_offset}")
        return None
    rest = vol.read(off + SECTOR, size - SECTOR)
    if rest is None:
        notes.append(f"{where}: JSON area unreadable")
        return None
    raw = head + rest
    if not _checksum_ok(raw, where, notes):
        return None
    meta = _json(raw[BINARY_HEADER:])
    if meta is None:
        notes.append(f"{where}: JSON metadata does not parse")
        return None
    return Luks2(off, size, seqid, meta)


def _checksum_ok(raw: bytes, where: str, notes: list[str]) -> bool:
    alg = raw[72:104].split(b"\0", 1)[0].decode("ascii", "replace")
    try:
        h = hashlib.new(alg)
        h.update(raw[:CSUM_AT])
        h.update(bytes(CSUM_SIZE))
        h.update(raw[CSUM_AT + CSUM_SIZE :])
        digest = h.digest()
    except (ValueError, TypeError):  # unknown here, or one with no fixed size (shake_*)
        notes.append(f"{where}: checksum algorithm {alg!r} unknown here; header unchecked")
        return True
    if raw[CSUM_AT : CSUM_AT + len(digest)] != digest:
        notes.append(f"{where}: checksum does not match")
        return False
    return True


def _json(area: bytes) -> dict[str, object] | None:
    """The JSON object of a JSON area (NUL-terminated), if it is one with the needed keys."""
    try:
        meta = json.loads(area.split(b"\0", 1)[0].decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(meta, dict):
        return None
    if not all(isinstance(meta.get(k), dict) for k in ("keyslots", "segments", "config")):
        return None
    return meta


def _num(value: object) -> int | None:
    """A JSON u64 (a decimal string, as LUKS2 writes them, or a number), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    return None


def _items(meta: dict[str, object], key: str) -> list[tuple[str, dict[str, object]]]:
    section = meta.get(key)
    if not isinstance(section, dict):
        return []
    return [(str(k), v) for k, v in sorted(section.items()) if isinstance(v, dict)]


def _plan2(vol: Volume, hdr: Luks2) -> None:
    size = hdr.size
    vol.add(hdr.offset, size, P0, "luks2: header in use (binary header and JSON area)")
    other = size if hdr.offset == 0 else 0
    vol.add(other, size, P3, "luks2: other header copy")
    config = hdr.meta.get("config")
    config = config if isinstance(config, dict) else {}
    if _num(config.get("json_size")) != size - BINARY_HEADER:
        _note(vol, f"config json_size {config.get('json_size')!r} does not match the header")
    ks_size = _num(config.get("keyslots_size"))
    ks_end = 2 * size + ks_size if ks_size is not None else vol.size
    if ks_size is None:
        _note(vol, "config keyslots_size missing or insane")
    for name, slot in _items(hdr.meta, "keyslots"):
        area = slot.get("area")
        area = area if isinstance(area, dict) else {}
        off, length = _num(area.get("offset")), _num(area.get("size"))
        if off is None or length is None or off < 2 * size or off + length > vol.size:
            where = f"{area.get('offset')!r}+{area.get('size')!r}"
            _note(vol, f"key slot {name}: area {where} is not on this volume; not planned")
            continue
        if off + length > ks_end:
            _note(vol, f"key slot {name}: area runs past the key slots area")
        vol.add(off, length, P0, f"luks2: key slot {name} area")
        vol.plan.count("luks:keyslots")
    for name, seg in _items(hdr.meta, "segments"):
        _segment(vol, name, seg, 2 * size)


def _segment(vol: Volume, name: str, seg: dict[str, object], header_end: int) -> None:
    off = _num(seg.get("offset"))
    raw_size = seg.get("size")
    length = _num(raw_size)
    if raw_size == "dynamic" and off is not None:
        length = vol.size - off
    if off is None or length is None:
        _note(vol, f"segment {name}: offset {seg.get('offset')!r} or size {raw_size!r} insane")
    elif off < header_end:
        _note(vol, f"segment {name} at {off}: a detached header (the data is elsewhere)")
    elif off >= vol.size:
        _note(vol, f"segment {name} at {off} starts past the end of the volume")
    else:
        vol.add(off, length, P4, f"luks2: segment {name} (encrypted data)")
        vol.plan.count("luks:segments")


# ------------------------------------------------------------------ LUKS1
def _luks1(vol: Volume, first: bytes, notes: list[str]) -> Luks1:
    """The LUKS1 phdr starting with ``first`` (its second sector read here, if it can be)."""
    second = vol.read(SECTOR, SECTOR)
    raw = first + second if second is not None else first
    if second is None:
        notes.append("LUKS1 header sector 1 unreadable: key slots 6 and 7 unknown")
    payload, key_bytes = struct.unpack_from(">II", raw, 104)
    slots = []
    for i in range(LUKS1_SLOTS):
        at = LUKS1_SLOT_AT + i * LUKS1_SLOT_SIZE
        if at + LUKS1_SLOT_SIZE <= len(raw):
            state = struct.unpack_from(">I", raw, at)[0]
            offset, stripes = struct.unpack_from(">II", raw, at + 40)
            slots.append((i, state, offset, stripes))
    return Luks1(payload * SECTOR, key_bytes, slots)


def _plan1(vol: Volume, hdr: Luks1) -> None:
    vol.add(0, PHDR_SIZE, P0, "luks1: header (phdr)")
    key_bytes = hdr.key_bytes
    if not 0 < key_bytes <= 1024:
        _note(vol, f"key size {key_bytes} insane; key slot areas sized for {LUKS1_MAX_KEY}")
        key_bytes = LUKS1_MAX_KEY
    for i, state, offset, stripes in hdr.slots:
        if state == LUKS1_DISABLED:
            continue
        if state != LUKS1_ACTIVE:
            _note(vol, f"key slot {i}: unknown state {state:#x}; planned in case it is in use")
        if not 0 < stripes <= 64 * LUKS1_STRIPES:
            _note(vol, f"key slot {i}: {stripes} stripes insane; taken as {LUKS1_STRIPES}")
            stripes = LUKS1_STRIPES
        pos = offset * SECTOR
        size = -(-key_bytes * stripes // SECTOR) * SECTOR
        if pos < PHDR_SIZE or pos + size > vol.size:
            _note(vol, f"key slot {i}: key material at sector {offset} is not on this volume")
            continue
        vol.add(pos, size, P0, f"luks1: key slot {i} area")
        vol.plan.count("luks:keyslots")
    if hdr.payload == 0:
        _note(vol, "payload offset 0: a detached header (the data is elsewhere)")
    elif hdr.payload >= vol.size:
        _note(vol, f"payload at {hdr.payload} starts past the end of the volume")
    else:
        vol.add(hdr.payload, vol.size - hdr.payload, P4, "luks1: payload (encrypted data)")
        vol.plan.count("luks:segments")
