"""Copying non-tried blocks: passes 1-5 with skips (ddrescue 1.27, behaviour §2.3)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from engine.blockmap import FINISHED, NON_TRIED

if TYPE_CHECKING:
    from engine.rescuer import Read, Rescuer


def _msg(passno: int, forward: bool) -> str:
    way = "forwards" if forward else "backwards"
    return f"Copying non-tried blocks... Pass {passno} ({way})"


def copying_phase(r: Rescuer) -> Iterator[Read]:
    """Run the selected copying passes until one finds no non-tried data at all."""
    passes = r.opts.cpass if r.opts.cpass is not None else [1, 2, 3, 4, 5]
    resume = r.opts.cpass is None and r.saved_status == NON_TRIED and 1 <= r.saved_pass <= 5
    first = r.saved_pass if resume else 1
    for passno in passes:
        if passno < first:
            continue
        forward = r.direction(passno)
        if forward:
            start = r.domain_start
            if resume and passno == first and r.find_forward(r.saved_pos, NON_TRIED):
                start = max(start, r.saved_pos)
        else:
            start = r.domain_end
            if resume and passno == first and r.find_backward(r.saved_pos, NON_TRIED):
                start = min(start, r.saved_pos)
        r.set_phase(NON_TRIED, passno, _msg(passno, forward))
        if forward:
            found = yield from _forward(r, passno, start)
        else:
            found = yield from _backward(r, passno, start)
        if not found:
            return


def _qualifies(r: Rescuer, passno: int, start: int, end: int, forward: bool) -> bool:
    if passno not in (3, 4):
        return True
    if forward:
        return r.status_before(start) == FINISHED
    return r.status_after(end) == FINISHED


def _forward(r: Rescuer, passno: int, pos: int) -> Iterator[Read]:
    from engine.rescuer import Read

    softbs, ss = r.softbs, r.ss
    initial, maximum = r.skip_initial, r.skip_max
    eskip = initial
    expected: int | None = None
    found_any = False
    while True:
        blk = r.find_forward(pos, NON_TRIED)
        if blk is None:
            return found_any
        found_any = True
        bs, be = blk
        if not _qualifies(r, passno, bs, be, True):
            pos = be
            continue
        pos = max(pos, bs)
        end = min(pos + softbs, be)
        if end < be:
            end -= end % softbs
        if expected is not None and pos != expected:
            eskip = initial
        read = Read(pos, end - pos)
        yield read
        if not read.failed:
            if read.copied == read.size:
                eskip = initial
            pos = expected = read.end
            continue
        if passno == 1 and initial > 0:
            pos = read.end
            nxt = r.find_forward(pos, NON_TRIED)
            if nxt is not None and nxt[0] == pos:
                skip_end = min(pos + eskip, nxt[1])
                if skip_end < nxt[1]:
                    skip_end -= skip_end % ss
                pos = max(pos, skip_end)
            eskip = eskip * 2 if eskip <= maximum // 2 else maximum
        elif passno in (2, 3, 4):
            pos = max(be, read.end)
        else:
            pos = read.end
        expected = pos


def _backward(r: Rescuer, passno: int, pos: int) -> Iterator[Read]:
    from engine.rescuer import Read

    softbs, ss = r.softbs, r.ss
    initial, maximum = r.skip_initial, r.skip_max
    eskip = initial
    expected: int | None = None
    found_any = False
    while True:
        blk = r.find_backward(pos, NON_TRIED)
        if blk is None:
            return found_any
        found_any = True
        bs, be = blk
        if not _qualifies(r, passno, bs, be, False):
            pos = bs
            continue
        pos = min(pos, be)
        start = max(pos - softbs, bs)
        if start > bs:
            start = -(-start // softbs) * softbs
        if expected is not None and pos != expected:
            eskip = initial
        read = Read(start, pos - start, backward=True)
        yield read
        if not read.failed:
            if read.copied == read.size:
                eskip = initial
            pos = expected = read.pos
            continue
        if passno == 1 and initial > 0:
            pos = read.pos
            prv = r.find_backward(pos, NON_TRIED)
            if prv is not None and prv[1] == pos:
                skip_start = max(pos - eskip, prv[0])
                if skip_start > prv[0]:
                    skip_start = -(-skip_start // ss) * ss
                pos = min(pos, skip_start)
            eskip = eskip * 2 if eskip <= maximum // 2 else maximum
        elif passno in (2, 3, 4):
            pos = min(bs, read.pos)
        else:
            pos = read.pos
        expected = pos
