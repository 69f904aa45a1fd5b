"""``ddfs log -H C:H:S[-S2[,T]]:F|FF:B``: GNU ddrescuelog 1.30's ``--make-test`` test maps.

A test map describes a disk of C cylinders, H heads and S sectors per track (512 bytes, or the
``-b`` size) whose head B (0-based) is dead, for ddrescue's test mode (``-H``):

* ``F`` (forward): for each cylinder, for each head, one track of S sectors, bad on head B.
* ``FF`` (hybrid serpentine): the cylinders are cut into Z zones of T tracks (the last one may
  be shorter; T defaults to ``C // min(24, |S2 - S|)``); zone z has
  ``(S * (Z - 1 - z) + S2 * z) // (Z - 1)`` sectors per track; within a zone, for each head, for
  each cylinder of the zone, one track, bad on head B: one bad band per zone.

ddrescuelog builds the map sector by sector and compacts it; here the compacted blocks are
computed directly: a dead head gives exactly one bad block per zone (per cylinder for ``F``),
and the zones of the same shape follow each other at a fixed period, so each run of them is two
``range``s. The block lines and the status line are ddrescuelog 1.30's, byte for byte.

Two differences, both where ddrescuelog 1.30 gives no usable map: an ``FF`` geometry with a
single zone is refused (ddrescuelog divides by ``Z - 1`` and dies of SIGFPE), and so is a disk
larger than 2^63 - 1 bytes (ddrescuelog writes blocks of size 0 there).
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

from engine.errors import DdfsError
from engine.map.blockmap import BlockMap
from engine.map.mapfile_write import format_header, iter_mapfile_text
from engine.numbers import LLONG_MAX

__all__ = ["Geometry", "make_test_arrays", "make_test_text", "parse_geometry"]

_SPACES = " \t\n\v\f\r\xa0\udca0"  # C isspace() and byte 0xA0 (as text or as an undecoded byte)
_DIGITS = "0123456789"
_INVALID = "Invalid 'C:H:S:order:head' description in"


@dataclass(frozen=True)
class Geometry:
    """A ``--make-test`` geometry: ``C:H:S[-S2[,T]]:F|FF:B``."""

    cylinders: int
    heads: int
    sectors: int  # sectors per track of the first zone (of every track for F)
    last_sectors: int  # sectors per track of the last zone (== sectors for F)
    tracks_zone: int  # T, cylinders per zone (== cylinders for F)
    serpentine: bool  # FF
    bad_head: int

    @property
    def zones(self) -> int:
        return -(-self.cylinders // self.tracks_zone)


# ---------------------------------------------------------------- the argument


def _chvalue(ch: str) -> int:
    if "0" <= ch <= "9":
        return ord(ch) - ord("0")
    if "A" <= ch <= "Z":
        return ord(ch) - ord("A") + 10
    if "a" <= ch <= "z":
        return ord(ch) - ord("a") + 10
    return 255


def _strtoll(text: str) -> tuple[int, int, bool] | None:
    """ddrescue 1.30's ``strtoll_`` with base 0: ``(value, end index, out of range)``, or None
    if there is no number (ddrescue's EINVAL). Digits may be grouped by ``_`` (3 per group, 2 in
    hex, the first group shorter)."""
    i = 0
    while i < len(text) and text[i] in _SPACES:
        i += 1
    minus = text[i : i + 1] == "-"
    if text[i : i + 1] in ("-", "+"):
        i += 1
    if text[i : i + 1] == "" or text[i] not in _DIGITS:
        return None
    base = 10 if text[i] != "0" else 8
    if text[i : i + 2] in ("0x", "0X"):
        base, i = 16, i + 2
    per_group = 2 if base == 16 else 3
    digits = per_group - 1
    value = 0
    while i < len(text):
        if text[i] == "_":
            if digits < per_group:
                break
            digits = 0
        elif _chvalue(text[i]) < base:
            value = value * base + _chvalue(text[i])
            digits += 1
        else:
            break
        i += 1
    if digits < per_group:
        return None
    value = -value if minus else value
    return value, i, not -(2**63) <= value <= LLONG_MAX


def _multiplier(text: str, i: int) -> tuple[int, int] | None:
    """The multiplier at ``text[i]`` (ddrescue's ``getnum`` with a tail and no sector size):
    ``(factor, end index)``, or None for a bad multiplier. An unknown character ends the number."""
    p, i = text[i], i + 1
    nxt = text[i : i + 1]
    base, exponent, unit = 1000, -1, ""
    if p in "QRYZEPTGM":
        exponent = "MGTPEZYRQ".index(p) + 2
    elif p == "K":
        if nxt == "i":
            base, exponent, i = 1024, 1, i + 1
    elif p == "k":
        if nxt != "i":
            exponent = 1
    elif p in "Bs":
        unit, exponent = p, 0
    else:
        return 1, i - 1
    if exponent > 1 and text[i : i + 1] == "i":
        base, i = 1024, i + 1
    if exponent > 0 and not unit and text[i : i + 1] in ("B", "s"):
        unit, i = text[i], i + 1
    if exponent < 0 or unit == "s":  # 's' (sectors) needs a sector size: none here
        return None
    return base**exponent, i


def format_num3p(num: int) -> str:
    """A limit as ddrescue 1.30's messages show it: ``40``, ``10k``, ``1M``, ``40Ki``, ``12_345``"""
    prefix = ""
    if abs(num) >= 10000:
        for p in "KMGTPEZYRQ":
            if num == 0 or num % 1024:
                break
            num, prefix = num // 1024, p + "i"
        if not prefix:
            for p in "kMGTPEZYRQ":
                if num == 0 or num % 1000:
                    break
                num, prefix = num // 1000, p
    digits = str(abs(num))
    if abs(num) >= 10000:
        digits = f"{abs(num):_d}"
    return ("-" if num < 0 else "") + digits + prefix


def _getnum(text: str, option: str, low: int, high: int) -> tuple[int, str]:
    """A number at the start of ``text`` within ``[low, high]``, and the text after it."""
    number = _strtoll(text)
    if number is None:
        raise DdfsError(f"'{text}': Bad or missing numerical argument in option '{option}'.")
    value, i, out_of_range = number
    if not out_of_range and i < len(text):
        mult = _multiplier(text, i)
        if mult is None:
            raise DdfsError(f"'{text}': Bad multiplier in numerical argument of option '{option}'.")
        value, i = value * mult[0], mult[1]
    if out_of_range or not low <= value <= high:
        limits = f"[{format_num3p(low)},{format_num3p(high)}]"
        raise DdfsError(f"'{text}': Value out of limits {limits} in option '{option}'.")
    return value, text[i:]


def parse_geometry(arg: str, option: str = "-H") -> Geometry:
    """Parse ``C:H:S[-S2[,T]]:F|FF:B`` with ddrescuelog 1.30's limits and messages.

    Raises:
        DdfsError: ddrescuelog's message (exit 1) for a bad number, a value out of its limits
            (C 40..1M, H 1..256, S 8..10k, T 8..C, B 0..H-1) or a bad description.
    """
    invalid = DdfsError(f"'{arg}': {_INVALID} option '{option}'.")
    cylinders, rest = _getnum(arg, option, 40, 1_000_000)
    if rest[:1] != ":":
        raise invalid
    heads, rest = _getnum(rest[1:], option, 1, 256)
    if rest[:1] != ":":
        raise invalid
    sectors, rest = _getnum(rest[1:], option, 8, 10_000)
    last, tracks_zone = sectors, cylinders
    if rest[:1] == "-":
        last, rest = _getnum(rest[1:], option, 8, 10_000)
        if last == sectors:
            raise invalid
        if rest[:1] == ",":
            tracks_zone, rest = _getnum(rest[1:], option, 8, cylinders)
        else:
            tracks_zone = cylinders // min(24, abs(last - sectors))
    order = rest[1:3] if rest[1:3] == "FF" else rest[1:2]
    if rest[:1] != ":" or order not in ("F", "FF") or rest[1 + len(order) : 2 + len(order)] != ":":
        raise invalid
    bad_head, rest = _getnum(rest[2 + len(order) :], option, 0, heads - 1)
    if rest or (order == "F") != (last == sectors):
        raise invalid
    geom = Geometry(cylinders, heads, sectors, last, tracks_zone, order == "FF", bad_head)
    if geom.serpentine and geom.zones < 2:
        raise DdfsError(
            f"'{arg}': 'FF' needs at least 2 zones of T tracks (T < C) in option '{option}'."
        )
    return geom


# ---------------------------------------------------------------- the map


def _segments(geom: Geometry) -> list[tuple[int, int, int]]:
    """The zones as runs of equal shape: ``(zones, cylinders per zone, sectors per track)``.

    ``F`` is one run of C one-cylinder zones: cylinder by cylinder, head by head."""
    if not geom.serpentine:
        return [(geom.cylinders, 1, geom.sectors)]
    zones, t = geom.zones, geom.tracks_zone
    out: list[tuple[int, int, int]] = []
    for z in range(zones):
        cyls = min(geom.cylinders, (z + 1) * t) - z * t
        sectors = (geom.sectors * (zones - 1 - z) + geom.last_sectors * z) // (zones - 1)
        if out and out[-1][1:] == (cyls, sectors):
            out[-1] = (out[-1][0] + 1, cyls, sectors)
        else:
            out.append((1, cyls, sectors))
    return out


def disk_size(geom: Geometry, sector_size: int) -> int:
    """The size in bytes of the disk ``geom`` describes."""
    return sum(n * geom.heads * c * s * sector_size for n, c, s in _segments(geom))


def make_test_arrays(geom: Geometry, sector_size: int) -> tuple[array, bytearray, int]:
    """The compacted blocks of the test map: ``(starts, statuses, end)``.

    Every zone holds one bad band (head B's tracks of the zone), then good data up to the next
    band; with a single head the whole disk is one bad block.

    Raises:
        DdfsError: the disk would be larger than 2^63 - 1 bytes.
    """
    end = disk_size(geom, sector_size)
    if end > LLONG_MAX:
        raise DdfsError(
            f"The test disk would be larger than {LLONG_MAX} bytes; use a smaller sector size."
        )
    if geom.heads == 1:
        return array("q", [0]), bytearray(b"-"), end
    bad, good = array("q"), array("q")
    pos = 0
    for count, cyls, sectors in _segments(geom):
        band = cyls * sectors * sector_size
        period = geom.heads * band
        first, stop = pos + geom.bad_head * band, pos + count * period
        bad.extend(range(first, stop, period))
        good.extend(range(first + band, stop + band, period))
        pos = stop
    starts = array("q", bytes(16 * len(bad)))
    starts[0::2] = bad
    starts[1::2] = good
    statuses = bytearray(b"-+") * len(bad)
    if geom.bad_head == geom.heads - 1:  # the last band ends the disk
        del starts[-1], statuses[-1]
    if geom.bad_head > 0:
        starts.insert(0, 0)
        statuses.insert(0, ord("+"))
    return starts, statuses, end


def make_test_text(
    geom: Geometry, sector_size: int, command_line: str | None, start_time: float | None = None
) -> Iterable[str]:
    """The test map as ddrescuelog 1.30 writes it, in pieces: the header (naming ddfs), ``#
    Finished``, the status line ``0x00000000     +               1`` and the block lines."""
    starts, statuses, end = make_test_arrays(geom, sector_size)
    bmap = BlockMap.from_arrays(starts, statuses, end)
    when = time.time() if start_time is None else start_time
    header = format_header(command_line, when, None, "Finished", tool="ddfs log")
    return iter_mapfile_text(bmap, 0, "+", 1, header)
