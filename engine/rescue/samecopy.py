"""Is another source a copy of the same disk? The check behind merging damaged copies.

When a mapfile's recorded identity (:mod:`engine.rescue.identity`) differs from the source now
given (another size, another serial number), the source may still be another damaged copy of
the same disk, whose good areas fill the image's gaps: ddrescue's way of merging copies. So
before refusing, a sample of the sectors the map says are rescued is read from the source and
from the image and compared: the same data where both are readable lets the run go on (merging
the copy in); any difference refuses it, saying how many of the sampled sectors differ.
Sectors the source cannot read, or the image does not hold, are not compared, nor a sector of
zeros in the source where the image holds data: a copy made with ``dd conv=noerror,sync`` (or
by ddrescue, or ddfs) holds zeros where its own disk could not be read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from engine.map.blockmap import FINISHED, BlockMap
from engine.rescue.source import Source

SAMPLES = 32  # sectors compared at most, spread evenly over the rescued data


@dataclass
class Comparison:
    """How many sampled rescued sectors could be compared, and how many of them differ."""

    compared: int = 0
    differ: int = 0


def sample_sectors(bmap: BlockMap, limit: int, ss: int, count: int = SAMPLES) -> list[int]:
    """Up to ``count`` sector positions, evenly spread over the finished sectors below
    ``limit``."""
    ranges = []
    total = 0
    for start, end, status in bmap.blocks_from(0):
        if start >= limit:
            break
        if status != FINISHED:
            continue
        first, last = -(-start // ss), min(end, limit) // ss
        if last > first:
            ranges.append((first, last))
            total += last - first
    k = min(count, total)
    picks = [(2 * j + 1) * total // (2 * k) for j in range(k)]
    out: list[int] = []
    base = 0
    it = iter(ranges)
    first, last = next(it, (0, 0))
    for pick in picks:
        while pick >= base + (last - first):
            base += last - first
            first, last = next(it)
        out.append((first + pick - base) * ss)
    return out


def compare_with_image(
    source: Source, outfile: str, offset: int, bmap: BlockMap, ss: int
) -> Comparison:
    """Compare sampled rescued sectors of ``source`` with the image ``outfile`` (input position
    + ``offset`` = output position)."""
    result = Comparison()
    limit = bmap.end if source.size < 0 else min(bmap.end, source.size)
    try:
        fd = os.open(outfile, os.O_RDONLY)
    except OSError:
        return result
    try:
        buf = memoryview(bytearray(ss))
        zeros = bytes(ss)
        for pos in sample_sectors(bmap, limit, ss):
            copied, err = source.read_into(pos, ss, buf)
            if err or copied < ss:
                continue
            try:
                held = os.pread(fd, ss, pos + offset)
            except OSError:
                continue
            data = buf.tobytes()
            if len(held) < ss or (data == zeros and held != zeros):
                continue  # not held by the image, or a hole of the other copy
            result.compared += 1
            result.differ += held != data
    finally:
        os.close(fd)
    return result
