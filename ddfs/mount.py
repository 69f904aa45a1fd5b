"""``ddfs mount``: the rescue runs in the engine thread while FUSE serves the image.

Lifecycle: check the mount point, prepare the rescue exactly as ``ddfs rescue`` does, start the
engine thread (:class:`engine.scheduler.Scheduler`), mount, find the partitions (their tables are
rescued first, through the engine), serve. SIGINT/SIGTERM/SIGHUP or an unmount stop it cleanly:
the engine stops between two reads, the map is saved, the mount is removed; a caught signal is
re-raised so the exit status is ddrescue's.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass

import pyfuse3
import trio

from ddfs.fusefs import Operations
from ddfs.reader import ImageReader
from ddfs.view import View
from engine.errors import DdfsError
from engine.options import RescueOptions
from engine.partitions import TableUnreadable, read_partitions, table_ranges
from engine.rescuer import Stop
from engine.scheduler import Scheduler
from engine.setup import prepare
from engine.status import StatusScreen

log = logging.getLogger(__name__)


@dataclass
class MountOptions:
    """What ``ddfs mount`` adds to the rescue options."""

    read_timeout: float = 5.0
    unreadable: str = "eio"
    allow_other: bool = False
    readahead: int = 1 << 20
    partition_timeout: float = 60.0


def check_mountpoint(path: str) -> None:
    """Refuse a missing, non-empty or already mounted directory, and spot a dead mount."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENOTCONN:
            raise DdfsError(
                f"{path}: a previous mount is still attached but dead ({exc.strerror}).\n"
                f"Clear it with 'fusermount3 -u -z {path}' and run ddfs mount again."
            ) from None
        raise DdfsError(f"{path}: Can't use mount point: {exc.strerror}") from None
    if not os.path.isdir(path):
        raise DdfsError(f"{path}: Mount point is not a directory.")
    if os.path.ismount(path):
        raise DdfsError(f"{path}: Mount point is already a mount. Unmount it first.")
    if os.listdir(path):
        raise DdfsError(f"{path}: Mount point is not empty.")
    del st


async def find_partitions(view: View, reader: ImageReader, timeout: float) -> None:
    """Rescue the partition tables through the engine, then show the partitions."""
    size = view.image_size
    with trio.move_on_after(timeout):
        for start, end in table_ranges(size):
            await reader.rescue_range(start, end - start)
        for _ in range(130):  # an EBR chain is read one link at a time
            missing: list[tuple[int, int]] = []

            def read(pos: int, n: int, missing: list[tuple[int, int]] = missing) -> bytes | None:
                if pos + n > size or not view.rescuer.is_finished(pos, n):
                    missing.append((pos, n))
                    return None
                data = os.pread(reader.fd, n, pos + reader.offset)
                return data + bytes(n - len(data))

            try:
                parts = read_partitions(read, size)
            except TableUnreadable:
                pos, n = missing[-1]
                if pos + n > size or not await reader.rescue_range(pos, n):
                    view.partition_note = f"unreadable sector at {pos}"
                    return
                continue
            view.set_partitions(parts)
            view.partition_note = f"{len(parts)} partition(s)" if parts else "none found"
            return
    view.partition_note = "not rescued yet (timed out)"


async def _serve(
    view: View,
    reader: ImageReader,
    mountpoint: str,
    mopts: MountOptions,
    signals: list[int],
    fuse_opts: set[str],
) -> None:
    ops = Operations(view, reader)
    pyfuse3.init(ops, mountpoint, fuse_opts)
    try:
        async with trio.open_nursery() as nursery:

            async def watch_signals() -> None:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as rx:
                    async for signum in rx:
                        if not signals:
                            signals.append(signum)
                        view.scheduler.stop(signum)
                        pyfuse3.terminate()

            nursery.start_soon(watch_signals)
            nursery.start_soon(find_partitions, view, reader, mopts.partition_timeout)
            await pyfuse3.main()
            nursery.cancel_scope.cancel()
    finally:
        pyfuse3.close(unmount=True)


def run_mount(
    infile: str,
    outfile: str,
    mapfile: str | None,
    mountpoint: str,
    opts: RescueOptions,
    mopts: MountOptions,
) -> int:
    """Run ``ddfs mount``; return the exit status (or die by a re-raised signal)."""
    from ddfs.cli import fail, reraise

    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        check_mountpoint(mountpoint)
        rescuer, existed = prepare(infile, outfile, mapfile, opts)
    except DdfsError as exc:
        fail(exc.message, exc.exit_code)
    if mapfile is not None and not os.path.exists(mapfile):
        rescuer.save()
    screen = StatusScreen(sys.stdout, quiet=opts.quiet, binary=opts.binary_prefixes)
    rescuer.on_progress = screen.update
    scheduler = Scheduler(rescuer)
    view = View(scheduler, rescuer.source.size)
    reader = ImageReader(
        view, outfile, rescuer.offset, mopts.read_timeout, mopts.unreadable, mopts.readahead
    )
    fuse_opts = set(pyfuse3.default_options) | {"fsname=ddfs", "subtype=ddfs", "ro"}
    if mopts.allow_other:
        fuse_opts.add("allow_other")
    screen.start(rescuer, existed)
    engine = threading.Thread(target=scheduler.run, name="ddfs-engine", daemon=True)
    engine.start()
    signals: list[int] = []
    try:
        trio.run(_serve, view, reader, mountpoint, mopts, signals, fuse_opts)
    finally:
        scheduler.stop(signals[0] if signals else 0)
        engine.join()
        reader.close()
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
    if isinstance(outcome, DdfsError):
        fail(outcome.message, outcome.exit_code)
    if signals:
        reraise(signals[0])
    if isinstance(outcome, Stop) and not outcome.signum:
        return 1
    return 0
