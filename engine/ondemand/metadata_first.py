"""Planning through the engine: every byte the planner reads is rescued first.

:func:`engine_reader` gives the planner a :data:`~engine.metadata.volume.Reader` whose reads
go to the source as on-demand reads (:func:`engine.ondemand.urgent.read_urgent`: whole
clusters, no scraping: a structure in a failed cluster is left for the fallbacks and the normal
schedule), and then come back from the output. :func:`metadata_first` plans and wraps the
rescue book's schedule in :class:`engine.schedule.tiers.MetadataFirst`, which works through the
tiers before the normal schedule.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.map.ranges import merge
from engine.metadata import signatures as sig
from engine.metadata.planner import plan_disk
from engine.metadata.volume import P2, P3, P4, Plan, Reader
from engine.ondemand.urgent import read_urgent
from engine.progress.figures import figures, format_range, tier_ranges
from engine.rescue.book import RescueBook
from engine.rescue.screen import fit
from engine.schedule.tiers import MetadataFirst

if TYPE_CHECKING:  # (the scanners load only when files are named)
    from engine.damage.files import Request as FileRequest

EXT_MAGIC_AT = 1024 + 56
SMALL = 16 * 1024  # structures up to this size get their own sectors retried


def engine_reader(
    rescuer: RescueBook, fd: int, between: Callable[[], None] | None = None
) -> Reader:
    """A reader that rescues what it reads; ``between`` runs before each source read (the
    live mount serves its queued requests there)."""
    size = rescuer.source.size

    def read(pos: int, n: int) -> bytes | None:
        if pos < 0 or n <= 0 or pos + n > size:
            return None
        if not rescuer.map.is_finished(pos, n):
            if between is not None:
                between()
            rescuer.check_limits()  # a signal stops the planning as it stops the passes
            read_urgent(rescuer, pos, n, scrape=False)
            if not rescuer.map.is_finished(pos, n) and n <= SMALL:
                # the retry budget: a small structure inside a failed cluster is read again,
                # just its own sectors, once (a bad neighbour must not hide it)
                read_urgent(rescuer, pos, n, scrape=True)
            if not rescuer.map.is_finished(pos, n):
                return None
        data = os.pread(fd, n, pos + rescuer.offset)
        return data + bytes(n - len(data))

    return read


def worth_planning(read: Reader) -> bool:
    """A quick look at the first 4 KiB: a boot signature, an ext superblock, an XFS superblock,
    a LUKS header or an LVM2 label; or, under a blank first 4 KiB, a btrfs superblock (at
    64 KiB); or unreadable (then the
    fallbacks may still find something). Random or blank data is not planned."""
    head = read(0, 4096)
    if head is None:
        return True
    if head[510:512] == b"\x55\xaa" or head[EXT_MAGIC_AT : EXT_MAGIC_AT + 2] == b"\x53\xef":
        return True
    if head[:4] == sig.XFS_MAGIC or head[:6] == sig.LUKS_MAGIC:
        return True
    if any(head[s : s + 8] == sig.LVM_LABEL for s in range(0, 2048, 512)):
        return True
    if any(head):  # btrfs leaves its first 64 KiB blank (a boot sector would be signed)
        return False
    btrfs = read(sig.BTRFS_SUPER_OFFSETS[0], sig.BTRFS_SUPER_SIZE)
    return btrfs is not None and btrfs[0x40:0x48] == sig.BTRFS_MAGIC


def metadata_first(rescuer: RescueBook, between: Callable[[], None] | None = None) -> Plan | None:
    """Plan the disk through the engine and give the rescuer its tiers (P0-P2, P3, P4).

    Returns the plan, or None when nothing was recognised (the rescue then runs in plain
    ddrescue order).
    """
    if rescuer.map.domain != [(0, rescuer.map.bmap.end)]:
        return None  # -i, -s, -m or -C chose the area: nothing is read outside it
    fd = os.open(rescuer.output.path, os.O_RDONLY | os.O_CLOEXEC)
    rescuer.message = "Reading the partition table and filesystem metadata..."
    try:
        read = engine_reader(rescuer, fd, between)
        if not worth_planning(read):
            return None
        plan = plan_disk(read, rescuer.source.size)
        first = files_first(rescuer, read, plan) if rescuer.opts.first else []
    finally:
        os.close(fd)
    if not plan.filesystems and len(plan.areas) <= 2:
        return None

    def replan() -> list[tuple[str, list[tuple[int, int]]]] | None:
        fd = os.open(rescuer.output.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            again = plan_disk(engine_reader(rescuer, fd, between), rescuer.source.size)
        finally:
            os.close(fd)
        plan.areas, plan.notes = again.areas, again.notes  # the caller's plan grows too
        return with_first(tiers_of(again), first)

    rescuer.set_schedule(MetadataFirst(rescuer.schedule, with_first(tiers_of(plan), first), replan))
    return plan


def files_first(rescuer: RescueBook, read: Reader, plan: Plan) -> list[tuple[int, int]]:
    """The ranges of the files ``--first`` names, found once the metadata is planned (the
    scan rescues the directories and inodes it reads); kept on the rescuer for the status."""
    _requests, notes, spans = find_files(rescuer, read, rescuer.opts.first)
    plan.notes.extend(notes)
    return spans


def find_files(
    rescuer: RescueBook, read: Reader, specs: list[str]
) -> tuple[list[FileRequest], list[str], list[tuple[int, int]]]:
    """Resolve ``specs`` (``p1:/dir``) through ``read``; the requests replace those of the same
    spec on the rescuer (the status shows them). Returns them, the notes and their ranges."""
    from engine.damage.files import resolve  # (its scanners load only when files are named)

    requests, notes = resolve(read, rescuer.source.size, specs)
    named = {r.spec for r in requests}
    rescuer.first_requests = [r for r in rescuer.first_requests if r.spec not in named] + requests
    return requests, notes, merge(span for req in requests for span in req.spans)


def with_first(
    tiers: list[tuple[str, list[tuple[int, int]]]], first: list[tuple[int, int]]
) -> list[tuple[str, list[tuple[int, int]]]]:
    """The files first tier right after the metadata they need."""
    return [*tiers[:1], ("files", first), *tiers[1:]] if first else tiers


def tiers_of(plan: Plan) -> list[tuple[str, list[tuple[int, int]]]]:
    """The plan as the rescuer's tiers: metadata (P0-P2), redundancy (P3), used data (P4)."""
    return [(name, plan.ranges(hi, lo)) for name, lo, hi in TIERS]


def plan_summary(plan: Plan) -> str:
    """For the status screen, in 80 columns: what was recognised and how big each tier is."""
    fs = [f"{name} at {start}" for start, _size, name in plan.filesystems] or ["none"]
    fs[-1] += ";"
    return fit(
        "Metadata first: filesystems",
        [
            *fs,
            f"metadata {plan.size_of(P2)} B",
            f"redundancy {plan.size_of(P3, P3)} B",
            f"used data {plan.size_of(P4, P4)} B",
        ],
    ).replace(";,", ";")


TIERS = (("metadata", 0, P2), ("redundancy", P3, P3), ("used data", P4, P4))


def tier_progress(plan: Plan, rescuer: RescueBook) -> list[dict[str, object]]:
    """Per tier (metadata, used data, free space): its size, its bytes by status, how much is
    finished, and the cumulative remaining-time range in seconds (``eta_low``/``eta_high``)."""
    book = rescuer.map
    with book.lock:
        totals = {st: book.domain_size_of(st, whole=True) for st in "+?*/-"}
        figs = figures(
            book.bmap,
            tier_ranges(plan, book.whole_domain),
            rescuer.measured_rates(),
            rescuer.ss,
            rescuer.opts.max_retries,
            totals,
        )
    out: list[dict[str, object]] = []
    for f in figs:
        d = f.as_dict()
        out.append({"tier": f.name, "bytes": f.size, **d})
    return out


def tier_line(plan: Plan, rescuer: RescueBook) -> str:
    """``  metadata 100.00 % (done), used data 37.10 % (2m - 1h 5m), free space 0.00 % (...)``,
    then a line per ``--first`` request (:func:`first_line`)."""
    parts = []
    for t in tier_progress(plan, rescuer):
        left = "done" if not t["to_read"] else format_range(t["eta_low"], t["eta_high"])  # type: ignore[arg-type]
        parts.append(f"{t['tier']} {t['pct']:.2f} % ({left})")
    first = first_line(rescuer)
    return fit("  tiers:", parts) + (f"\n{first}" if first else "")


def first_progress(rescuer: RescueBook) -> list[dict[str, object]]:
    """Per ``--first`` request: its files done (every byte rescued), damaged (a bad sector in
    them) and pending, and whether the path was found."""
    out: list[dict[str, object]] = []
    book = rescuer.map
    with book.lock:
        for req in rescuer.first_requests:
            done = damaged = 0
            for _path, spans in req.files:
                if book.bmap.size_in(spans, "-"):
                    damaged += 1
                elif all(book.is_finished(a, b - a) for a, b in spans):
                    done += 1
            out.append(
                {
                    "request": req.spec,
                    "found": req.found,
                    "files": len(req.files),
                    "done": done,
                    "damaged": damaged,
                    "pending": len(req.files) - done - damaged,
                }
            )
    return out


def first_line(rescuer: RescueBook) -> str:
    """``  first p1:/Photos: 12 done, 1 damaged, 7 pending of 20 files`` per request."""
    lines = []
    for r in first_progress(rescuer):
        if not r["found"]:
            lines.append(f"  first {r['request']}: not found")
            continue
        lines.append(
            fit(
                f"  first {r['request']}:",
                [
                    f"{r['done']} done",
                    f"{r['damaged']} damaged",
                    f"{r['pending']} pending",
                    f"of {r['files']} files",
                ],
            )
        )
    return "\n".join(lines)
