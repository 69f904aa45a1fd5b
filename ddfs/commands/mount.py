"""``ddfs mount``: the rescue runs in the engine thread while FUSE serves the image.

Lifecycle: check the mount point, prepare the rescue exactly as ``ddfs rescue`` does, start the
engine thread (:class:`engine.ondemand.thread.Scheduler`), mount, find the partitions (their tables
are rescued first, through the engine), serve. SIGINT/SIGTERM/SIGHUP or an unmount stop it cleanly:
the engine stops between two reads, the map is saved, the mount is removed; a caught signal is
re-raised so the exit status is ddrescue's.

With ``--overlay`` the mount is read-write: writes go to the overlay (:mod:`ddfs.live.overlay`),
which is committed on fsync/close by the adapter, every :data:`COMMIT_EVERY` seconds here, and
once more at the end. With ``--repair-view`` the substitutions (:mod:`ddfs.live.repairview`) are
worked out again every :data:`REPAIR_EVERY` seconds while the rescue runs, and the backups they
need are asked for at read-ahead priority. The partition files follow the partition table as
served, so a table repaired in the overlay shows at the next mount.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass

import pyfuse3
import trio

from ddfs.live.fusefs import Operations
from ddfs.live.overlay import Overlay
from ddfs.live.reader import ImageReader
from ddfs.live.repairview import RepairView, backup_areas
from ddfs.live.tree import View
from engine.errors import DdfsError
from engine.metadata.partitions import TableUnreadable, read_partitions, table_ranges
from engine.metadata.through import metadata_first, tier_line
from engine.ondemand.thread import Scheduler
from engine.options import RescueOptions
from engine.progress.screen import StatusScreen
from engine.rescue.rescuer import Stop
from engine.rescue.setup import Declined, prepare

log = logging.getLogger(__name__)
ENGINE_GRACE = 3.0  # seconds the engine thread gets to finish its read when stopping
COMMIT_EVERY = 5.0  # seconds between two commits of a written overlay
REPAIR_EVERY = 2.0  # seconds between two looks for substitutions while the rescue runs


@dataclass
class MountOptions:
    """What ``ddfs mount`` adds to the rescue options."""

    read_timeout: float = 5.0
    unreadable: str = "eio"
    allow_other: bool = False
    readahead: int = 1 << 20
    loop: bool = False
    overlay: str | None = None  # --overlay: writes go to this copy-on-write file
    repair_view: bool = False  # --repair-view: backups served in place of lost primaries


DEAD = (errno.ENOTCONN, errno.ECONNABORTED)


def _dead(path: str, exc: OSError) -> DdfsError:
    return DdfsError(
        f"{path}: a previous mount is still attached but dead ({exc.strerror}).\n"
        f"Clear it with 'fusermount3 -u -z {path}' and run ddfs mount again."
    )


def check_mountpoint(path: str) -> None:
    """Refuse a missing, non-empty or already mounted directory, and spot a dead mount."""
    try:
        os.stat(path)
        entries = os.listdir(path)  # a dead FUSE mount answers ENOTCONN here, not to stat
    except OSError as exc:
        if exc.errno in DEAD:
            raise _dead(path, exc) from None
        if exc.errno == errno.ENOTDIR:
            raise DdfsError(f"{path}: Mount point is not a directory.") from None
        raise DdfsError(f"{path}: Can't use mount point: {exc.strerror}") from None
    if os.path.ismount(path):
        raise DdfsError(f"{path}: Mount point is already a mount. Unmount it first.")
    if entries:
        raise DdfsError(f"{path}: Mount point is not empty.")


async def find_partitions(view: View, reader: ImageReader, retry_every: float = 2.0) -> None:
    """Rescue the partition tables through the engine, then show the partitions.

    The table sectors jump the queue once; if they cannot be had yet, the table is looked at
    again every ``retry_every`` seconds until the background schedule is over.
    """
    size = view.image_size
    for start, end in table_ranges(size):
        await reader.rescue_range(start, end - start)
    while True:
        if await _try_partitions(view, reader):
            return
        if view.scheduler.background_done:
            if not await _try_partitions(view, reader):
                view.partition_note += "; the rescue is over"
            return
        await trio.sleep(retry_every)


async def _try_partitions(view: View, reader: ImageReader) -> bool:
    size = view.image_size
    for _ in range(130):  # an EBR chain is read one link at a time
        missing: list[tuple[int, int]] = []

        def read(pos: int, n: int, missing: list[tuple[int, int]] = missing) -> bytes | None:
            data = reader.served_sync(pos, n) if pos + n <= size else None
            if data is None:
                missing.append((pos, n))
            return data

        try:  # preads: in a worker thread, as every blocking call
            parts = await trio.to_thread.run_sync(read_partitions, read, size)
        except TableUnreadable:
            pos, n = missing[-1]
            if pos + n > size or not await reader.rescue_range(pos, n):
                view.partition_note = f"not readable yet (sector at {pos})"
                return False
            continue
        view.set_partitions(parts)
        view.partition_note = f"{len(parts)} partition(s)" if parts else "none found"
        return True
    return False


async def keep_committing(reader: ImageReader, every: float = COMMIT_EVERY) -> None:
    """Commit the overlay's writes every ``every`` seconds (when there are any)."""
    while True:
        await trio.sleep(every)
        try:
            await reader.commit()
        except OSError as exc:
            sys.stderr.write(f"ddfs: the overlay could not be committed: {exc}\n")


async def keep_repair_view(
    view: View, reader: ImageReader, repair: RepairView, every: float = REPAIR_EVERY
) -> None:
    """Work the substitutions out while the rescue runs, and once after it."""
    size = view.image_size
    while True:
        over = view.scheduler.background_done
        for pos, n in backup_areas(size, view.partitions) + repair.wanted():
            if _untried(view, pos, n):  # (bad backups are not asked for again and again)
                reader.read_ahead(pos, n)
        await trio.to_thread.run_sync(repair.refresh, reader.rescued_sync, size, view.partitions)
        if over:
            return
        await trio.sleep(every)


def _untried(view: View, pos: int, size: int) -> bool:
    r = view.rescuer
    with r.lock:
        return r.bmap.find_forward(pos, "?", pos + size) is not None


class LoopDevices:
    """``--loop``: ``image`` and each partition file attached as loop devices, read-only
    unless the mount has an overlay (then writes through them go to the overlay).

    One loop device per file (rather than ``losetup -P``) works on every kernel, including
    those built without partition-table parsing, and maps each partition to a device name.
    """

    def __init__(self, writable: bool = False) -> None:
        self.devices: dict[str, str] = {}
        self.argv = ["losetup", "-f", "--show"] if writable else ["losetup", "-r", "-f", "--show"]

    async def attach(self, path: str) -> None:
        res = await trio.to_thread.run_sync(
            lambda: subprocess.run([*self.argv, path], capture_output=True, text=True)
        )
        if res.returncode != 0:
            sys.stderr.write(f"ddfs: losetup {path} failed: {res.stderr.strip()}\n")
            return
        self.devices[path] = res.stdout.strip()
        sys.stderr.write(f"ddfs: {os.path.basename(path)} attached as {res.stdout.strip()}\n")

    async def attach_all(self, mountpoint: str, view: View) -> None:
        await self.attach(os.path.join(mountpoint, "image"))
        while not view.partitions and not view.scheduler.background_done:
            await trio.sleep(0.5)
        for p in view.partitions:
            await self.attach(os.path.join(mountpoint, f"p{p.number}"))

    async def detach(self) -> None:
        devices, self.devices = list(self.devices.values()), {}
        for dev in devices:
            await trio.to_thread.run_sync(
                lambda dev=dev: subprocess.run(["losetup", "-d", dev], capture_output=True)
            )
        for dev in devices:
            backing = f"/sys/block/{os.path.basename(dev)}/loop/backing_file"
            with trio.move_on_after(10):
                while os.path.exists(backing):  # the kernel lets go of the file lazily
                    await trio.sleep(0.05)


async def _serve(
    view: View,
    reader: ImageReader,
    mountpoint: str,
    mopts: MountOptions,
    signals: list[int],
    fuse_opts: set[str],
) -> None:
    ops = Operations(view, reader)
    loop = LoopDevices(writable=mopts.overlay is not None)
    pyfuse3.init(ops, mountpoint, fuse_opts)
    try:
        async with trio.open_nursery() as nursery:

            async def watch_signals() -> None:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as rx:
                    async for signum in rx:
                        if not signals:
                            signals.append(signum)
                        view.scheduler.stop(signum)
                        await loop.detach()
                        pyfuse3.terminate()

            nursery.start_soon(watch_signals)
            nursery.start_soon(find_partitions, view, reader)
            if reader.overlay is not None:
                nursery.start_soon(keep_committing, reader)
            if reader.repair is not None:
                nursery.start_soon(keep_repair_view, view, reader, reader.repair)
            if mopts.loop:
                nursery.start_soon(loop.attach_all, mountpoint, view)
            await pyfuse3.main()
            nursery.cancel_scope.cancel()
    finally:
        pyfuse3.close(unmount=True)


def _ondemand_line(view: View) -> str:
    s = view.scheduler
    line = (
        f"  on-demand: {view.ondemand_reads} reads, {view.ondemand_timeouts} timeouts,"
        f" {view.ondemand_eio} EIO, {view.readahead_requests} read-aheads,"
        f" {len(s.pending())} queued; partitions: {view.partition_note}"
    )
    if view.plan is not None:
        line += "\n" + tier_line(view.plan, view.rescuer)
    if view.overlay is not None:
        o = view.overlay.stats()
        line += (
            f"\n  overlay: {o['written_bytes']} B in {o['written_ranges']} range(s),"
            f" {o['writes']} writes, {o['commits']} commits"
            + (", uncommitted writes" if o["uncommitted"] else "")
        )
    if view.repair is not None:
        serving, total = view.repair.counts()
        line += f"\n  repair view: {serving} of {total} substitution(s) serving"
    return line


def _open_overlay(
    infile: str,
    outfile: str,
    mapfile: str | None,
    mopts: MountOptions,
    size: int,
    offset: int,
) -> Overlay | None:
    """``--overlay``: open or create it, locked; never one of the rescue's own files."""
    if mopts.overlay is None:
        return None
    protect = {"INFILE": infile, "OUTFILE": outfile}
    if mapfile is not None:
        protect["MAPFILE"] = mapfile
    return Overlay.open(
        mopts.overlay, size, output=outfile, output_offset=offset, source=infile, protect=protect
    )


def run_mount(
    infile: str,
    outfile: str,
    mapfile: str | None,
    mountpoint: str,
    opts: RescueOptions,
    mopts: MountOptions,
) -> int:
    """Run ``ddfs mount``; return the exit status (or die by a re-raised signal)."""
    from ddfs.commands.cli import fail, reraise

    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        check_mountpoint(mountpoint)
        from ddfs.commands.rescue import ask_user

        rescuer, existed = prepare(infile, outfile, mapfile, opts, confirm=ask_user)
        size, offset = rescuer.source.size, rescuer.offset
        overlay = _open_overlay(infile, outfile, mapfile, mopts, size, offset)
    except Declined:
        return 1
    except DdfsError as exc:
        fail(exc.message, exc.exit_code)
    if mapfile is not None and not os.path.exists(mapfile):
        rescuer.save()
    screen = StatusScreen(sys.stdout, quiet=opts.quiet, binary=opts.binary_prefixes)
    rescuer.on_progress = screen.update

    def plan_first(s: Scheduler) -> None:
        if opts.metadata_first:
            view.plan = metadata_first(s.rescuer, s.serve_pending)

    scheduler = Scheduler(rescuer, plan_first)
    view = View(scheduler, rescuer.source.size, writable=overlay is not None)
    repair = RepairView(rescuer.is_finished) if mopts.repair_view else None
    view.overlay, view.repair = overlay, repair
    reader = ImageReader(
        view,
        outfile,
        rescuer.offset,
        mopts.read_timeout,
        mopts.unreadable,
        mopts.readahead,
        overlay=overlay,
        repair=repair,
    )
    fuse_opts = set(pyfuse3.default_options) | {"fsname=ddfs", "subtype=ddfs"}
    if overlay is None:
        fuse_opts.add("ro")
    if mopts.allow_other:
        fuse_opts.add("allow_other")
    screen.extra = lambda: _ondemand_line(view)
    screen.start(rescuer, existed)
    engine = threading.Thread(target=scheduler.run, name="ddfs-engine", daemon=True)
    engine.start()
    signals: list[int] = []
    overlay_error: str | None = None
    try:
        trio.run(_serve, view, reader, mountpoint, mopts, signals, fuse_opts)
    finally:
        if overlay is not None:
            try:
                overlay.commit()
            except OSError as exc:
                overlay_error = f"{overlay.path}: the overlay could not be committed: {exc}"
            overlay.close()
        scheduler.stop(signals[0] if signals else 0)
        engine.join(ENGINE_GRACE)
        if engine.is_alive():
            # The source does not answer the read in progress. The map is consistent between
            # reads (updates happen under the lock), so save it from here and leave; the
            # stuck read dies with the process.
            with rescuer.lock:
                try:
                    rescuer.flush_pending()
                    rescuer.save(final=True)
                    sys.stderr.write("ddfs: the input does not answer; map saved without it\n")
                except DdfsError as exc:
                    scheduler.save_error = exc
        else:
            reader.close()
            outcome = scheduler.outcome
            rescuer.log_end(str(outcome) if isinstance(outcome, Stop) else "")
            rescuer.close()
            rescuer.source.close()
            rescuer.output.close()
    outcome = scheduler.outcome
    final = (
        "Finished"
        if scheduler.background_done and outcome is None
        else (f"  {outcome}" if outcome is not None else "  Stopped (unmounted)")
    )
    screen.finish(rescuer, final)
    if scheduler.save_error is not None:
        fail(scheduler.save_error.message, 1)
    if overlay_error is not None:
        fail(overlay_error, 1)
    if isinstance(outcome, DdfsError):
        fail(outcome.message, outcome.exit_code)
    if signals:
        reraise(signals[0])
    if isinstance(outcome, Stop) and not outcome.signum:
        return 1
    return 0
