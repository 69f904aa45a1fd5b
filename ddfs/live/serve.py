"""The live mount's service in trio: the FUSE loop and the tasks around it.

:func:`serve` mounts the adapter (:mod:`ddfs.live.fusefs`) and runs, beside pyfuse3's loop:
the signal watcher (the engine stops between two reads, the loop devices are detached, the loop
ends), :func:`find_partitions` (the partition tables are rescued through the engine first, then
shown as files), the overlay's periodic commits, the repair view's refresh and ``--loop``'s
devices (:class:`LoopDevices`), and the control socket of ``ddfs first``
(:mod:`ddfs.live.control`). Every blocking call runs in a worker thread.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass

import pyfuse3
import trio

from ddfs.live.control import serve_control, socket_name
from ddfs.live.fusefs import Operations
from ddfs.live.loops import LoopDevices, users_of
from ddfs.live.reader import ImageReader
from ddfs.live.repairview import RepairView, backup_areas
from ddfs.live.view import View
from engine.errors import DdfsError
from engine.metadata.partitions import Partition, TableUnreadable, read_partitions, table_ranges
from engine.metadata.volume import Reader

COMMIT_EVERY = 5.0  # seconds between two commits of a written overlay
REPAIR_EVERY = 2.0  # seconds between two looks for substitutions while the rescue runs


@dataclass
class ServeOptions:
    """What the service needs to know of ``ddfs mount``'s options."""

    loop: bool = False  # --loop: attach image and partitions as loop devices
    writable: bool = False  # an overlay takes writes (also through the loop devices)


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
        if view.live.background_done:
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


async def find_logical_volumes(view: View, reader: ImageReader, every: float = 2.0) -> None:
    """Once the partitions are known, show each LVM2 logical volume that is one range of a
    PV (a partition, or the whole disk) as a file ``VG-LV`` beside them. The PV metadata is
    rescued early by metadata first; until it is, this looks again every ``every`` seconds."""
    size = view.image_size
    while True:
        over = view.live.background_done
        parts = [p for p in view.partitions if not p.file]
        volumes = [(p.start, p.size) for p in parts] or [(0, size)]

        def read(pos: int, n: int) -> bytes | None:
            return reader.served_sync(pos, n) if pos + n <= size else None

        found = await trio.to_thread.run_sync(_logical_volumes, read, volumes)
        if found:
            first = max((p.number for p in parts), default=0) + 1
            lvs = [
                Partition(first + i, start, n, "lvm", "8e", name, name)
                for i, (name, start, n) in enumerate(found)
            ]
            view.set_partitions(parts + lvs)
            view.partition_note += f", {len(lvs)} logical volume(s)"
            return
        if over:
            return
        await trio.sleep(every)


def _logical_volumes(read: Reader, volumes: list[tuple[int, int]]) -> list[tuple[str, int, int]]:
    from engine.metadata.lvm import logical_volumes

    return [lv for start, n in volumes for lv in logical_volumes(read, start, n)]


async def _partitions_then_volumes(view: View, reader: ImageReader) -> None:
    await find_partitions(view, reader)
    await find_logical_volumes(view, reader)


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
        over = view.live.background_done
        for pos, n in backup_areas(size, view.partitions) + repair.wanted():
            if _untried(view, pos, n):  # (bad backups are not asked for again and again)
                reader.read_ahead(pos, n)
        await trio.to_thread.run_sync(repair.refresh, reader.rescued_sync, size, view.partitions)
        if over:
            return
        await trio.sleep(every)


def _untried(view: View, pos: int, size: int) -> bool:
    return view.live.untried(pos, size)


async def leave_when_unused(view: View, mountpoint: str, every: float = 1.0) -> None:
    """After a stop signal: unmount as ``umount`` would, never lazily. While something uses
    the mount (a loop device over one of its files, an open file) the image goes on being
    served, read-only and finished, and that is said once with the users found."""
    said = False
    while True:
        res = await trio.to_thread.run_sync(
            lambda: subprocess.run(["fusermount3", "-u", mountpoint], capture_output=True)
        )
        if res.returncode == 0:
            return  # pyfuse3's loop ends: the session is gone (the map is saved after it)
        if not said:
            await _save_now(view)
            users = await trio.to_thread.run_sync(users_of, mountpoint)
            who = ", ".join(users) if users else "open files"
            sys.stderr.write(
                f"ddfs: stopped, map saved; {mountpoint} is in use by {who}: the image is "
                "served until they are gone (then ddfs ends)\n"
            )
            said = True
        await trio.sleep(every)


async def _save_now(view: View) -> None:
    """The engine's final save (or, if its read does not return, a save without it)."""
    live = view.live
    if await trio.to_thread.run_sync(live.scheduler.finished.wait, 3.0):
        return
    try:
        await trio.to_thread.run_sync(live.save_without_engine)
    except DdfsError as exc:
        sys.stderr.write(f"ddfs: {exc.message}\n")


async def serve(
    view: View,
    reader: ImageReader,
    mountpoint: str,
    sopts: ServeOptions,
    signals: list[int],
    fuse_opts: set[str],
) -> None:
    """Mount, serve until unmounted or signalled, unmount. ``signals`` gets the first signal
    caught (SIGINT, SIGTERM, SIGHUP): the engine is told to stop, the loop devices are
    detached, and the mount goes once nothing uses it (:func:`leave_when_unused`)."""
    ops = Operations(view, reader)
    loop = LoopDevices(writable=sopts.writable)
    control = socket_name(mountpoint)  # (a path under the mount can't be looked up once mounted)
    pyfuse3.init(ops, mountpoint, fuse_opts)
    try:
        async with trio.open_nursery() as nursery:

            async def watch_signals() -> None:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as rx:
                    async for signum in rx:
                        if signals:
                            continue  # (the first one is being answered)
                        signals.append(signum)
                        view.live.stop(signum)
                        await loop.detach()
                        nursery.start_soon(leave_when_unused, view, mountpoint)

            nursery.start_soon(watch_signals)
            nursery.start_soon(_partitions_then_volumes, view, reader)
            nursery.start_soon(serve_control, view, control)
            if reader.overlay is not None:
                nursery.start_soon(keep_committing, reader)
            if reader.repair is not None:
                nursery.start_soon(keep_repair_view, view, reader, reader.repair)
            if sopts.loop:
                nursery.start_soon(loop.attach_all, mountpoint, view)
            await pyfuse3.main()
            nursery.cancel_scope.cancel()
    finally:
        pyfuse3.close(unmount=True)
