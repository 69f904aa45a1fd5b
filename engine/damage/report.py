"""The damage report of a whole image: partitions, each volume's filesystem scanned by its
module, every entry and structure intersected with the map.

:func:`build_report` reads the mapfile (``engine.map.mapfile``'s parser and errors), finds the
partitions (``engine.metadata.partitions``; a bare filesystem when there is no table), probes each
with the modules of :data:`MODULES` (ext, NTFS, exFAT, FAT, in the planner's order) and keeps:

* entries (files and directories) with bad or unrescued bytes, and entries whose extent is
  unknown or partial because their own metadata is unreadable;
* metadata structures with bad or unrescued bytes;
* the damage of each partition that no entry or structure claims (free space, slack, or
  things that could not be found).

The result is plain data (:class:`Report`), turned into JSON by :meth:`Report.to_dict` and
into text by ``ddfs report``.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from engine.damage import exfat, ext, fat, ntfs
from engine.damage.model import KNOWN, Damage, Entry, ImageReader, MetaHit, VolumeReport, merge
from engine.errors import DdfsError, Stop
from engine.map.mapfile import parse_mapfile
from engine.metadata.partitions import TableUnreadable, read_gpt, read_partitions
from engine.metadata.volume import Plan, Volume

#: filesystem modules, probed in this order; each has NAME, probe(vol) and scan(vol)
MODULES: list[ModuleType] = [ext, ntfs, exfat, fat]
SECTOR = 512
SCHEMA_VERSION = 1


@dataclass
class PartitionReport:
    """One partition (or the whole disk) and what was found on it."""

    number: int | None  # None: the whole disk, no partition table
    start: int
    size: int
    scheme: str  # "mbr", "gpt", "none", or "lvm" for a logical volume
    filesystem: str | None
    bad: int
    unrescued: int
    entries: list[Entry] = field(default_factory=list)
    metadata: list[MetaHit] = field(default_factory=list)
    unclaimed_bad: int = 0
    unclaimed_unrescued: int = 0
    notes: list[str] = field(default_factory=list)
    name: str = ""  # a logical volume's VG-LV

    @property
    def damaged(self) -> list[Entry]:
        return [e for e in self.entries if e.extent == KNOWN]

    @property
    def unknown(self) -> list[Entry]:
        return [e for e in self.entries if e.extent != KNOWN]


@dataclass
class Report:
    """The report of one image against one map."""

    image: str
    mapfile: str
    image_size: int
    bad: int
    unrescued: int
    disk_metadata: list[MetaHit] = field(default_factory=list)
    partitions: list[PartitionReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON structure documented in :mod:`ddfs.commands.report`."""
        return {
            "version": SCHEMA_VERSION,
            "image": self.image,
            "mapfile": self.mapfile,
            "image_size": self.image_size,
            "bad": self.bad,
            "unrescued": self.unrescued,
            "disk_metadata": [_hit(h) for h in self.disk_metadata],
            "notes": list(self.notes),
            "partitions": [
                {
                    "number": p.number,
                    "name": p.name,
                    "scheme": p.scheme,
                    "start": p.start,
                    "size": p.size,
                    "filesystem": p.filesystem,
                    "bad": p.bad,
                    "unrescued": p.unrescued,
                    "files": [_entry(e) for e in p.damaged],
                    "unknown_extent": [_entry(e) for e in p.unknown],
                    "metadata": [_hit(h) for h in p.metadata],
                    "unclaimed": {"bad": p.unclaimed_bad, "unrescued": p.unclaimed_unrescued},
                    "notes": list(p.notes),
                }
                for p in self.partitions
            ],
        }


def _entry(e: Entry) -> dict[str, Any]:
    return {
        "path": e.path,
        "type": e.kind,
        "id": e.ident,
        "size": e.size,
        "bad": e.bad,
        "unrescued": e.unrescued,
        "extent": e.extent,
        "name_lost": e.name_lost,
        "reason": e.reason,
    }


def _hit(h: MetaHit) -> dict[str, Any]:
    return {
        "structure": h.what,
        "start": h.start,
        "size": h.size,
        "bad": h.bad,
        "unrescued": h.unrescued,
    }


def build_report(image: str, mapfile: str) -> Report:
    """The report of ``image`` against ``mapfile``.

    Raises:
        MapfileError: a malformed map (exit 2).
        DdfsError: a file that cannot be read (exit 1).
    """
    try:
        mode = os.stat(image).st_mode
    except OSError:
        mode = 0
    usable = stat.S_ISREG(mode) or stat.S_ISBLK(mode)
    if not usable or not os.access(image, os.R_OK):
        raise DdfsError(f"{image}: Image does not exist or is not a readable file or device.")
    if mapfile != "-" and not os.access(mapfile, os.R_OK):
        raise DdfsError(f"{mapfile}: Mapfile does not exist or is not readable.")
    data = parse_mapfile(mapfile)
    try:
        with open(image, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
        damage = Damage(data.bmap, size)
        reader = ImageReader(image, damage)
    except OSError as exc:
        raise DdfsError(f"{image}: Can't open image: {exc.strerror}") from None
    try:
        return _report(image, mapfile, size, damage, reader)
    finally:
        reader.close()


def _report(image: str, mapfile: str, size: int, damage: Damage, reader: ImageReader) -> Report:
    bad, unrescued = damage.count([(0, size)])
    report = Report(image, mapfile, size, bad, unrescued)
    tables: list[tuple[str, int, int]] = [("MBR / boot sector", 0, SECTOR)]
    try:
        parts = read_partitions(reader, size)
    except TableUnreadable as exc:
        parts = read_gpt(reader, size, SECTOR) or []  # a GPT needs no MBR to be read
        if parts:
            report.notes.append(f"MBR unreadable ({exc}); the GPT was read without it")
        else:
            report.notes.append(f"partition table unreadable ({exc}); scanned as a bare disk")
    if parts and parts[0].scheme == "gpt":
        tables += [("GPT header and entries", SECTOR, 33 * SECTOR)]
        tables += [("backup GPT", size - 33 * SECTOR, 33 * SECTOR)]
    for what, start, n in tables:
        hit = _intersect(damage, what, [(start, start + n)])
        if hit is not None:
            report.disk_metadata.append(hit)
    if parts:
        for p in parts:
            report.partitions.append(_volume(reader, damage, p.number, p.start, p.size, p.scheme))
            _logical_volumes(report, reader, damage, p.start, p.size)
        inside = merge((p.start, p.end) for p in parts)
        in_bad, in_unres = damage.count(inside)
        if bad - in_bad or unrescued - in_unres:
            report.notes.append(
                f"outside the partitions: {bad - in_bad} bad bytes, "
                f"{unrescued - in_unres} unrescued bytes"
            )
    else:
        report.partitions.append(_volume(reader, damage, None, 0, size, "none"))
        _logical_volumes(report, reader, damage, 0, size)
    return report


def _logical_volumes(
    report: Report, reader: ImageReader, damage: Damage, start: int, size: int
) -> None:
    """Each LVM2 logical volume that is one range of the PV on ``[start, start+size)``,
    reported as a volume of its own (``VG-LV``)."""
    from engine.metadata.lvm import logical_volumes

    if report.partitions and report.partitions[-1].filesystem not in (None, "lvm"):
        return
    for name, lv_start, lv_size in logical_volumes(reader, start, size):
        part = _volume(reader, damage, None, lv_start, lv_size, "lvm")
        part.name = name
        report.partitions.append(part)


def _intersect(damage: Damage, what: str, spans: list[tuple[int, int]]) -> MetaHit | None:
    b, u = damage.count(spans)
    if not b and not u:
        return None
    start = min(s for s, _ in spans)
    return MetaHit(what, start, sum(e - s for s, e in merge(spans)), b, u)


def scan_volume(vol: Volume, notes: list[str]) -> VolumeReport | None:
    """The first module of :data:`MODULES` whose probe matches ``vol``, and its scan; None if
    none does. A module's own failure is a note in ``notes`` (its probe: the next module is
    tried; its scan: an empty report saying where it stopped), never a traceback; what the
    engine raises through the reader (a write error, a signal) goes through."""
    for module in MODULES:
        try:
            if not module.probe(vol):
                continue
        except (DdfsError, Stop):
            raise
        except Exception as exc:  # one module's bug must not hide the others' answers
            notes.append(f"the {module.NAME} probe failed: {exc!r}")
            continue
        try:
            found: VolumeReport = module.scan(vol)
        except (DdfsError, Stop):
            raise
        except Exception as exc:
            found = VolumeReport(module.NAME, notes=[f"the scan stopped: {exc!r}"])
        return found
    return None


def _volume(
    reader: ImageReader, damage: Damage, number: int | None, start: int, size: int, scheme: str
) -> PartitionReport:
    bad, unrescued = damage.count([(start, start + size)])
    part = PartitionReport(number, start, size, scheme, None, bad, unrescued)
    vol = Volume(reader, start, size, Plan(reader.size))
    found = scan_volume(vol, part.notes)
    if found is None:
        part.notes.append("no known filesystem (or its boot sector / superblock is unreadable)")
        part.unclaimed_bad, part.unclaimed_unrescued = bad, unrescued
        return part
    part.filesystem = found.filesystem
    part.notes += found.notes + [n for n in vol.plan.notes if n not in found.notes]
    _fill(part, found, damage)
    return part


def _fill(part: PartitionReport, found: VolumeReport, damage: Damage) -> None:
    claimed: list[tuple[int, int]] = []
    for e in found.entries:
        claimed += e.spans
        e.bad, e.unrescued = damage.count(e.spans)
        if e.bad or e.unrescued or e.extent != KNOWN:
            part.entries.append(e)
    part.entries.sort(key=lambda e: (e.path, e.ident))
    grouped: dict[str, list[tuple[int, int]]] = {}
    for area in found.metadata:
        grouped.setdefault(area.what, []).append((area.start, area.start + area.size))
        claimed.append((area.start, area.start + area.size))
    for what, spans in grouped.items():
        hit = _intersect(damage, what, spans)
        if hit is not None:
            part.metadata.append(hit)
    part.metadata.sort(key=lambda h: h.start)
    end = part.start + part.size
    inside = [(max(s, part.start), min(e, end)) for s, e in claimed]
    cb, cu = damage.count(inside)
    part.unclaimed_bad, part.unclaimed_unrescued = part.bad - cb, part.unrescued - cu
