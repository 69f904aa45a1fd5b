"""Progress that means something: figures per tier and an honest remaining-time range.

A rescue with bad areas has no single ETA: data that reads well goes at the current rate, but
each sector of a failed area may cost a slow failed read. So each tier (metadata, used data,
free space, rescued in that order with metadata first) gets a range: the low end assumes
everything left reads at the current rate, the high end that every non-trimmed and non-scraped
sector (and with retries every bad sector, once per pass) fails at the measured cost of a failed
read. The times are cumulative: how long until that tier is done.

The rescuer's rates are also kept in the mapfile as a comment line (``# Rates: ...``) that
ddrescue ignores, so ``ddfs status MAPFILE`` can give the same figures for a running rescue.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from engine.map.blockmap import BAD_SECTOR, FINISHED, NON_SCRAPED, NON_TRIED, NON_TRIMMED, BlockMap
from engine.map.ranges import Ranges, intersect, subtract
from engine.metadata.volume import P3, P4, Plan

RATES_PREFIX = "# Rates:"
_ORDER = (FINISHED, NON_TRIED, NON_TRIMMED, NON_SCRAPED, BAD_SECTOR)  # TierFigures' field order


@dataclass
class Rates:
    """What the rescuer measured: bytes per second, and the mean time of a failed read."""

    average: float = 0.0
    current: float = 0.0
    error_read_seconds: float = 0.0  # 0: no failed read measured yet

    def line(self) -> str:
        return (
            f"{RATES_PREFIX} average={self.average:.0f} current={self.current:.0f}"
            f" error_read_seconds={self.error_read_seconds:.4f}"
        )

    @classmethod
    def parse(cls, line: str) -> Rates | None:
        if not line.startswith(RATES_PREFIX):
            return None
        found = dict(re.findall(r"(\w+)=([0-9.]+)", line))
        try:
            return cls(
                float(found.get("average", 0)),
                float(found.get("current", 0)),
                float(found.get("error_read_seconds", 0)),
            )
        except ValueError:
            return None


@dataclass
class TierFigures:
    """One tier's bytes by status; ``eta_low``/``eta_high`` in seconds (None: not known)."""

    name: str
    size: int
    finished: int
    non_tried: int
    non_trimmed: int
    non_scraped: int
    bad_sector: int
    eta_low: float | None = None
    eta_high: float | None = None
    to_read: int = 0  # bytes the schedule will still read (bad sectors only with retries)

    @property
    def pct(self) -> float:
        return round(100 * self.finished / self.size, 2) if self.size else 100.0

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "pct": self.pct}


def tier_ranges(plan: Plan | None, domain: Ranges) -> list[tuple[str, Ranges]]:
    """Metadata (P0-P3), used data (P4) and free space (the rest), each inside ``domain``."""
    if plan is None:
        return [("all", domain)]
    meta = intersect(plan.ranges(P3), domain)
    used = subtract(intersect(plan.ranges(P4, P4), domain), meta)
    free = subtract(subtract(domain, meta), used)
    return [("metadata", meta), ("used data", used), ("free space", free)]


def figures(
    bmap: BlockMap,
    tiers: list[tuple[str, Ranges]],
    rates: Rates | None = None,
    sector: int = 512,
    retry_passes: int = 0,
    totals: dict[str, int] | None = None,
) -> list[TierFigures]:
    """Per tier: the bytes by status and the cumulative remaining-time range.

    ``totals`` (bytes by status over all the tiers) lets the last tier be counted by
    difference, which keeps a huge map's free space cheap to count once a second.
    """
    out: list[TierFigures] = []
    low_sum = high_sum = 0.0
    high_known = True
    counted = dict.fromkeys(_ORDER, 0)
    for index, (name, ranges) in enumerate(tiers):
        size = sum(e - s for s, e in ranges)
        if totals is not None and index == len(tiers) - 1:
            # the last tier (free space: most of the disk) is what the others leave
            by_status = {st: totals[st] - counted[st] for st in _ORDER}
        else:
            by_status = {st: bmap.size_in(ranges, st) for st in _ORDER}
        for st in _ORDER:
            counted[st] += by_status[st]
        f = TierFigures(name, size, *(by_status[st] for st in _ORDER))
        failed = f.non_trimmed + f.non_scraped
        retried = f.bad_sector if retry_passes != 0 else 0
        f.to_read = f.non_tried + failed + retried
        if f.to_read == 0:  # nothing more to read here: done as soon as the tiers before
            f.eta_low = low_sum if rates is not None else None
            f.eta_high = high_sum if rates is not None and high_known else None
        elif rates is not None and rates.current > 0:
            rate = rates.current
            low_sum += (f.non_tried + failed + retried) / rate
            f.eta_low = low_sum
            if rates.error_read_seconds > 0 or failed + retried == 0:
                passes = retry_passes if retry_passes >= 0 else 1
                bad_reads = (failed + f.bad_sector * passes) / sector
                high_sum += f.non_tried / rate + bad_reads * rates.error_read_seconds
            else:
                high_known = False
            high_sum = max(high_sum, low_sum)  # a failed read may be cheaper than a good one
            f.eta_high = high_sum if high_known else None
        out.append(f)
    return out


def format_range(low: float | None, high: float | None) -> str:
    """``12s``, ``2m - 3h 10m``, ``at least 5m``, ``n/a``."""
    from engine.numbers import format_time

    if low is None:
        return "n/a"
    lo = format_time(low, low >= 180).strip()
    if high is None:
        return f"at least {lo}"
    hi = format_time(high, high >= 180).strip()
    return lo if lo == hi else f"{lo} - {hi}"
