"""Retrying bad sectors: ``-r N`` passes over every ``-`` sector, alternating direction (§2.6).

Each pass reads every ``-`` sector of the domain once, one sector per read. Passes are numbered
from 1, or from 2 when resuming an even retry pass (not with ``-u``), and pass K goes the way
:meth:`ScheduleContext.direction` gives for K; the number stored in the mapfile is K. A resumed pass
(saved status ``-``) continues from ``current_pos``. ``-r`` counts the passes of this run; a
pass that finds no ``-`` sector ends the phase. Each pass's phase is set at its first read.
A retry only resumes when no earlier phase of this run has read anything.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

from engine.map.blockmap import BAD_SECTOR
from engine.schedule.base import Read, ScheduleContext
from engine.schedule.ddrescue127.copy import resume_start


def retrying_phase(ctx: ScheduleContext) -> Iterator[Read]:
    """Run up to ``-r`` retry passes (``-1``: until no bad sector is left)."""
    resume = _resumes(ctx)
    even = resume and not ctx.opts.unidirectional and ctx.resume.passno % 2 == 0
    first = 2 if even else 1
    limit = ctx.opts.max_retries
    passno = first
    while limit < 0 or passno - first < limit:
        forward = ctx.direction(passno)
        way = "forwards" if forward else "backwards"
        message = f"Retrying bad sectors... Retry {passno - first + 1} ({way})"
        start = resume_start(ctx, BAD_SECTOR, forward, resume and passno == first)
        found = yield from _retry_pass(ctx, passno, message, forward, start)
        if not found:
            return
        passno += 1


def _resumes(ctx: ScheduleContext) -> bool:
    """A retry resumes when the saved status is ``-`` and no phase has read in this run.

    ddrescue tests its current status, which is the loaded one until a phase reads (the
    rescuer sets its message at a phase's first read).
    """
    return ctx.resume.status == BAD_SECTOR and not ctx.has_started()


def _retry_pass(
    ctx: ScheduleContext, passno: int, message: str, forward: bool, pos: int
) -> Generator[Read, None, bool]:
    """One pass over the ``-`` blocks from ``pos``; returns whether it found any."""
    found = False
    while True:
        blk = (
            ctx.book.find_forward(pos, BAD_SECTOR)
            if forward
            else ctx.book.find_backward(pos, BAD_SECTOR)
        )
        if blk is None:
            return found
        if not found:
            ctx.announce(BAD_SECTOR, passno, message)
            found = True
        if forward:
            yield from _forward_block(ctx, *blk)
            pos = blk[1]
        else:
            yield from _backward_block(ctx, *blk)
            pos = blk[0]


def _forward_block(ctx: ScheduleContext, a: int, b: int) -> Iterator[Read]:
    """Read ``[a, b)`` forwards, one sector per read."""
    ss = ctx.ss
    while a < b:
        read = Read(a, min((a // ss + 1) * ss, b) - a)
        yield read
        a = read.end


def _backward_block(ctx: ScheduleContext, a: int, b: int) -> Iterator[Read]:
    """Read ``[a, b)`` backwards, one sector per read."""
    ss = ctx.ss
    while b > a:
        s = max(((b - 1) // ss) * ss, a)
        read = Read(s, b - s, backward=True)
        yield read
        b = s
