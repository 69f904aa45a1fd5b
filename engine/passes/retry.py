"""Retrying bad sectors: ``-r N`` passes over every ``-`` sector, alternating direction (§2.6)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from engine.blockmap import BAD_SECTOR

if TYPE_CHECKING:
    from engine.rescuer import Read, Rescuer


def retrying_phase(r: Rescuer) -> Iterator[Read]:
    """Run up to ``-r`` retry passes (``-1``: until no bad sector is left)."""
    from engine.rescuer import Read

    resume = r.saved_status == BAD_SECTOR
    absolute = r.saved_pass if resume else 1
    resume_pos: int | None = r.saved_pos if resume else None
    count = 0
    limit = r.opts.max_retries
    ss = r.ss
    while limit < 0 or count < limit:
        forward = r.direction(absolute)
        way = "forwards" if forward else "backwards"
        r.set_phase(BAD_SECTOR, absolute, f"Retrying bad sectors... Retry {count + 1} ({way})")
        if forward:
            pos = r.domain_start if resume_pos is None else max(resume_pos, r.domain_start)
        else:
            pos = r.domain_end if resume_pos is None else min(resume_pos, r.domain_end)
        resume_pos = None
        found = False
        while True:
            blk = r.find_forward(pos, BAD_SECTOR) if forward else r.find_backward(pos, BAD_SECTOR)
            if blk is None:
                break
            found = True
            a, b = blk
            if forward:
                while a < b:
                    read = Read(a, min((a // ss + 1) * ss, b) - a)
                    yield read
                    a = read.end
                pos = blk[1]
            else:
                while b > a:
                    s = max(((b - 1) // ss) * ss, a)
                    read = Read(s, b - s, backward=True)
                    yield read
                    b = s
                pos = blk[0]
        if not found:
            return
        count += 1
        absolute += 1
