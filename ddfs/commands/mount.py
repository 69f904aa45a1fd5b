"""``ddfs mount``: the rescue runs in the engine thread while FUSE serves the image.

Lifecycle: check the mount point, prepare the rescue exactly as ``ddfs rescue`` does, start the
engine thread (:class:`engine.ondemand.thread.Scheduler`), mount, find the partitions (their tables
are rescued first, through the engine), serve. SIGINT/SIGTERM/SIGHUP or an unmount stop it cleanly:
the engine stops between two reads, the map is saved, the mount is removed; a caught signal is
re-raised so the exit status is ddrescue's.

With ``--overlay`` the mount is read-write: writes go to the overlay (:mod:`ddfs.live.overlay`),
which is committed on fsync/close by the adapter, every :data:`ddfs.live.serve.COMMIT_EVERY`
seconds, and once more at the end. With ``--repair-view`` the substitutions
(:mod:`ddfs.live.repairview`) are worked out again every :data:`ddfs.live.serve.REPAIR_EVERY`
seconds while the rescue runs, and the backups they need are asked for at read-ahead priority. The
partition files follow the partition table as served, so a table repaired in the overlay shows at
the next mount.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import pyfuse3
import trio

from ddfs.commands.notify import notify
from ddfs.live.loops import clear_dead_mount, loops_under
from ddfs.live.overlay import Overlay
from ddfs.live.reader import ImageReader
from ddfs.live.repairview import RepairView
from ddfs.live.serve import ServeOptions, serve
from ddfs.live.view import View
from engine.errors import DdfsError, Stop
from engine.ondemand.facade import ENGINE_GRACE, LiveRescue, build_live
from engine.options import RescueOptions
from engine.rescue.screen import StatusScreen, fit
from engine.rescue.setup import Declined

log = logging.getLogger(__name__)


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
    loops = " ".join(dev for dev, _ in loops_under(path))
    clear = (f"losetup -d {loops}; " if loops else "") + f"fusermount3 -u -z {path}"
    return DdfsError(
        f"{path}: a previous mount is still attached but dead ({exc.strerror}).\n"
        f"Clear it with '{clear}' and run ddfs mount again."
    )


def check_mountpoint(path: str, cleared: bool = False) -> None:
    """Refuse a missing, non-empty or already mounted directory; a dead ddfs mount (its
    process killed) is removed, with the loop devices it left, and said."""
    try:
        os.stat(path)
        entries = os.listdir(path)  # a dead FUSE mount answers ENOTCONN here, not to stat
    except OSError as exc:
        if exc.errno in DEAD and not cleared:
            done = clear_dead_mount(path)
            if done is not None:
                sys.stderr.write(f"ddfs: {path}: {done}\n")
                check_mountpoint(path, cleared=True)
                return
        if exc.errno in DEAD:
            raise _dead(path, exc) from None
        if exc.errno == errno.ENOTDIR:
            raise DdfsError(f"{path}: Mount point is not a directory.") from None
        raise DdfsError(f"{path}: Can't use mount point: {exc.strerror}") from None
    if os.path.ismount(path):
        raise DdfsError(f"{path}: Mount point is already a mount. Unmount it first.")
    if entries:
        raise DdfsError(f"{path}: Mount point is not empty.")


def check_outside(mountpoint: str, files: dict[str, str | None]) -> None:
    """Refuse a file of the rescue inside the mount point: the mount would hide it (a new
    mapfile written there before the mount could not be saved at the stop)."""
    top = os.path.realpath(mountpoint)
    for what, path in files.items():
        if path is not None and os.path.realpath(path).startswith(top + os.sep):
            raise DdfsError(f"{path}: {what} is inside the mount point {mountpoint}.")


def _ondemand_line(view: View) -> str:
    line = fit(
        "  on-demand:",
        [
            f"{view.ondemand_reads} reads",
            f"{view.ondemand_timeouts} timeouts",
            f"{view.ondemand_eio} EIO",
            f"{view.readahead_requests} read-aheads",
            f"{len(view.live.pending())} queued",
            f"partitions: {view.partition_note}",
        ],
    )
    tiers = view.live.tier_line()  # (the files-first lines alone when nothing was planned)
    if tiers:
        line += "\n" + tiers
    if view.overlay is not None:
        o = view.overlay.stats()
        parts = [
            f"{o['written_bytes']} B in {o['written_ranges']} range(s)",
            f"{o['writes']} writes",
            f"{o['commits']} commits",
        ]
        if o["uncommitted"]:
            parts.append("uncommitted writes")
        line += "\n" + fit("  overlay:", parts)
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
    from ddfs.commands.common import fail, reraise

    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        check_mountpoint(mountpoint)
        files = {"Input file": infile, "Output file": outfile, "Mapfile": mapfile}
        check_outside(mountpoint, {**files, "Overlay": mopts.overlay})
        from ddfs.commands.rescue import ask_user

        live, existed = build_live(infile, outfile, mapfile, opts, confirm=ask_user)
    except Declined:
        return 1
    except DdfsError as exc:
        fail(exc.message, exc.exit_code)
    try:
        overlay = _open_overlay(infile, outfile, mapfile, mopts, live.size, live.offset)
        live.create_mapfile()
    except DdfsError as exc:
        live.abandon()
        fail(exc.message, exc.exit_code)
    view, reader = _live_view(live, overlay, mopts)
    screen = StatusScreen(sys.stdout, quiet=opts.quiet, binary=opts.binary_prefixes)
    live.book.on_progress = screen.update
    screen.extra = lambda: _ondemand_line(view)
    screen.start(live.book, existed)
    live.start()
    signals: list[int] = []
    overlay_error: str | None = None
    sopts = ServeOptions(loop=mopts.loop, writable=overlay is not None)
    try:
        trio.run(serve, view, reader, mountpoint, sopts, signals, _fuse_options(overlay, mopts))
    finally:
        overlay_error = _close_overlay(overlay)
        _stop_engine(live, reader, signals)
    screen.finish(live.book, _final_line(live))
    return _exit_status(live, overlay_error, signals, fail, reraise)


def _live_view(
    live: LiveRescue, overlay: Overlay | None, mopts: MountOptions
) -> tuple[View, ImageReader]:
    """The model and the read policy over the running rescue."""
    view = View(live, live.size, writable=overlay is not None)
    repair = RepairView(live.is_finished) if mopts.repair_view else None
    view.overlay, view.repair = overlay, repair
    reader = ImageReader(
        view,
        live.output_path,
        live.offset,
        mopts.read_timeout,
        mopts.unreadable,
        mopts.readahead,
        overlay=overlay,
        repair=repair,
    )
    return view, reader


def _fuse_options(overlay: Overlay | None, mopts: MountOptions) -> set[str]:
    fuse_opts = set(pyfuse3.default_options) | {"fsname=ddfs", "subtype=ddfs"}
    if overlay is None:
        fuse_opts.add("ro")
    if mopts.allow_other:
        fuse_opts.add("allow_other")
    return fuse_opts


def _close_overlay(overlay: Overlay | None) -> str | None:
    """The overlay's last commit; the error message if it failed."""
    if overlay is None:
        return None
    error = None
    try:
        overlay.commit()
    except OSError as exc:
        error = f"{overlay.path}: the overlay could not be committed: {exc}"
    overlay.close()
    return error


def _stop_engine(live: LiveRescue, reader: ImageReader, signals: list[int]) -> None:
    """Stop the engine between two reads and close everything; if the source does not answer
    the read in progress within the grace time, save the map without it and leave the stuck
    read to die with the process."""
    live.stop(signals[0] if signals else 0)
    if not live.join(ENGINE_GRACE):
        try:
            live.save_without_engine()
            sys.stderr.write("ddfs: the input does not answer; map saved without it\n")
        except DdfsError as exc:
            live.scheduler.save_error = exc
        return
    reader.close()
    live.close()


def _final_line(live: LiveRescue) -> str:
    outcome = live.outcome
    if live.background_done and outcome is None:
        return "Finished"
    return f"  {outcome}" if outcome is not None else "  Stopped (unmounted)"


def _exit_status(
    live: LiveRescue,
    overlay_error: str | None,
    signals: list[int],
    fail: Callable[[str, int], NoReturn],
    reraise: Callable[[int], None],
) -> int:
    """ddrescue's exit status: a save error, an overlay error, a fatal error, a signal
    (re-raised), a limit (1), or 0."""
    outcome = live.outcome
    command = live.book.opts.notify_command
    files = (live.book.source.path, live.output_path, live.book.map.mapfile or "")
    error = live.save_error.message if live.save_error is not None else overlay_error
    if error is not None:
        notify(command, "error", 1, error, files)
        fail(error, 1)
    if isinstance(outcome, DdfsError):
        notify(command, "error", outcome.exit_code, outcome.message, files)
        fail(outcome.message, outcome.exit_code)
    if signals:
        notify(command, "stopped", 128 + signals[0], "Interrupted by user", files)
        reraise(signals[0])
    if isinstance(outcome, Stop) and not outcome.signum:
        notify(command, "stopped", 1, str(outcome), files)
        return 1
    done = live.background_done and outcome is None
    notify(command, "finished" if done else "stopped", 0, _final_line(live), files)
    return 0
