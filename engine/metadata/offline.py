"""Planning from an image and its map, without a source: only what the map calls finished is
read (``ddfs map`` outlines, ``ddfs status`` tiers). The rest is unknown, so the planner takes
its fallbacks exactly as during a rescue."""

from __future__ import annotations

import os

from engine.map.blockmap import BlockMap
from engine.metadata.partitions import Partition, TableUnreadable, read_partitions
from engine.metadata.planner import plan_disk
from engine.metadata.volume import Plan, Reader


def image_reader(fd: int, bmap: BlockMap) -> Reader:
    """Reads of the image that answer only where every byte is finished in ``bmap``."""
    size = bmap.end

    def read(pos: int, n: int) -> bytes | None:
        if pos < 0 or n <= 0 or pos + n > size:
            return None
        if bmap.find_forward(pos, "?*/-", pos + n) is not None:
            return None
        data = os.pread(fd, n, pos)
        return data.ljust(n, b"\0")  # past the image's end: never written, so zeros

    return read


def plan_image(image: str, bmap: BlockMap) -> tuple[Plan, list[Partition]]:
    """The metadata plan and the partitions of ``image`` as far as ``bmap`` allows."""
    fd = os.open(image, os.O_RDONLY | os.O_CLOEXEC)
    try:
        read = image_reader(fd, bmap)
        plan = plan_disk(read, bmap.end)
        try:
            parts = read_partitions(read, bmap.end)
        except TableUnreadable:
            parts = []
    finally:
        os.close(fd)
    return plan, parts
