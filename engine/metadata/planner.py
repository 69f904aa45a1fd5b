"""The planner: partition tables, then each partition's filesystem, into a tiered :class:`Plan`.

:func:`plan_disk` reads through a :data:`Reader` (in a rescue, one that rescues what it reads
first), so it works the same on a rescued image, a live rescue or a damaged disk; whatever it
cannot read leads to a fallback or a note, never to an exception.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType

from engine.errors import DdfsError, Stop
from engine.metadata.partitions import TableUnreadable, read_partitions
from engine.metadata.signatures import SIGNATURES
from engine.metadata.volume import P0, P3, Plan, Reader, Volume

TAIL = 64 * 1024  # tools probe the last 64 KiB of a disk and of a volume for backups
SECTOR = 512


def plan_disk(read: Reader, disk_size: int) -> Plan:
    """Plan the metadata of a whole disk (partitioned, or a bare filesystem)."""
    plan = Plan(disk_size)
    read = _cached(read)
    plan.add(0, SECTOR, P0, "MBR / boot sector")
    plan.add(disk_size - TAIL, TAIL, P0, "end of disk")
    try:
        parts = read_partitions(_recording(read, plan), disk_size)
    except TableUnreadable as exc:
        plan.note(f"partition table unreadable: {exc}")
        parts = []
    if parts:
        for p in parts:
            plan.add(p.end - TAIL, TAIL, P0, f"end of partition {p.number}")
            plan_volume(read, p.start, p.size, plan, f"p{p.number}")
    else:
        plan_volume(read, 0, disk_size, plan, "disk")
    return plan


def _cached(read: Reader, limit: int = 4096, entries: int = 4096) -> Reader:
    """Small reads answered once: every module probes sector 0 and the superblock area."""
    cache: dict[tuple[int, int], bytes | None] = {}

    def cached(pos: int, size: int) -> bytes | None:
        if size > limit:
            return read(pos, size)
        key = (pos, size)
        if key not in cache:
            if len(cache) >= entries:
                cache.clear()
            cache[key] = read(pos, size)
        return cache[key]

    return cached


def _recording(read: Reader, plan: Plan) -> Reader:
    """A reader that records the partition-table sectors it reads (P0; the backup GPT P3)."""

    def rec(pos: int, size: int) -> bytes | None:
        tier = P3 if pos > 34 * SECTOR and pos >= plan.disk_size - 33 * SECTOR else P0
        plan.add(pos, size, tier, "partition table")
        return read(pos, size)

    return rec


def plan_volume(read: Reader, start: int, size: int, plan: Plan, name: str = "") -> str | None:
    """Probe the filesystems on ``[start, start+size)`` and plan the first that matches.

    A module that fails (a parser's bug on strange data) costs a note, never the planning of
    the others and never a traceback; what the engine itself raises through the reader (a
    write error while rescuing, a signal) ends the planning, as it would end the rescue."""
    vol = Volume(read, start, size, plan)
    for module in _candidates(vol):
        try:
            if not module.probe(vol):
                continue
        except (DdfsError, Stop):
            raise
        except Exception as exc:  # a module must never stop the planning of the others
            plan.note(f"{name}: the {module.NAME} probe failed: {type(exc).__name__}: {exc}")
            continue
        plan.filesystems.append((start, size, module.NAME))
        try:
            module.plan(vol)
        except (DdfsError, Stop):
            raise
        except Exception as exc:
            plan.note(f"{name}: {module.NAME} planning stopped: {type(exc).__name__}: {exc}")
        return module.NAME
    plan.note(f"{name}: no known filesystem")
    return None


def _candidates(vol: Volume) -> Iterator[ModuleType]:
    """The modules whose signature ``vol`` carries, in probing order, each imported only then
    (a disk of no known filesystem imports none of them: see :mod:`.signatures`)."""
    for path, signature in SIGNATURES.values():
        if signature(vol):
            yield importlib.import_module(path)
