"""``ddfs simulate``: serve an image as a failing disk ``MOUNTPOINT/disk`` through FUSE.

A thin pyfuse3 adapter over the pure model :class:`ddfs.simulate.disk.FailingDisk`. The mount
is read-only and holds two files:

* ``disk``: the image, opened with ``direct_io`` so every read request reaches the model with
  the reader's own size: a 64 KiB ``read()`` arrives as one 64 KiB FUSE read. (The kernel
  splits a read at 256 pages of the reader's buffer, so any read up to 1 MiB - 4 KiB is one
  request, a 1 MiB read into a page-aligned buffer too, and bigger ones become several
  requests of at most 1 MiB.) A read touching a bad or weak area fails with EIO; every read takes
  the modelled time, one at a time (a ``trio.Lock``: one spindle). A read touching a hang
  area waits, *outside* the spindle lock, until the process ends (other areas stay
  readable); pyfuse3 has no FUSE interrupts, so only the unmount frees such a reader, which
  then gets an error (ENOTCONN/ECONNABORTED).
* ``stats.json``: the counters of the model, rendered afresh at every ``open()`` (one
  consistent snapshot per open file) and served with ``direct_io``; its size is that of a
  fresh rendering at every ``stat()`` (attribute timeout 0), so it is exact unless a disk
  read lands between the ``stat()`` and the ``open()`` (``direct_io`` reads go to EOF anyway).

``losetup -r -f --show MOUNTPOINT/disk`` works on the ``direct_io`` file (the loop driver
reads through ``read_iter``; verified on Linux 6.18 by ``tests/test_simulate.py``).

Lifecycle: SIGINT, SIGTERM and SIGHUP end the process cleanly (exit 0) with the unmount;
so does an external ``fusermount3 -u MOUNTPOINT``. With ``--background`` the command starts
itself again in a new session with ``--foreground``, waits until that child has mounted
(its "serving" line, which the parent repeats with the child's pid and log file), and exits 0;
the child's later messages go to that log file (in ``$TMPDIR``).

The option parsing (:func:`ddfs.simulate.launch.build_disk`) and ``--background``
(:func:`ddfs.simulate.launch.run_background`) live in ``launch.py``; this module is the
pyfuse3 adapter, the mount loop and ``main``.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import signal
import stat
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import IO, Any, ParamSpec, TypeVar

import pyfuse3
import trio

from ddfs.simulate.disk import FailingDisk
from ddfs.simulate.launch import SERVING, build_disk, run_background
from engine.errors import DdfsError

log = logging.getLogger("ddfs.simulate.fusefs")

ROOT = pyfuse3.ROOT_INODE
DISK = ROOT + 1
STATS = ROOT + 2
NAMES = {b"disk": DISK, b"stats.json": STATS}
# Reads of up to this size are done inline on the trio thread; larger ones in a worker thread
# (with their own CapacityLimiter). Measured on this 2-vCPU VM, `dd` of a 256 MiB image in the
# page cache through the mount at rate 0, medians of 5 runs, inline vs trio.to_thread:
# bs=4k 47 vs 19 MB/s, bs=64k 650 vs 340 MB/s, bs=1M 4.2 vs 3.0 GB/s. The thread hop (~0.1 ms)
# costs more than a small memcpy, and disk reads are serialised by the spindle lock anyway, so
# an inline pread only delays stats.json and lookups by one small pread. Requests above 128 KiB
# (up to the kernel's 1 MiB) still go to a thread, so an image on slow storage cannot stall
# the loop for long.
INLINE_READ_MAX = 128 * 1024

P = ParamSpec("P")
T = TypeVar("T")


def fuse_errors(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Map every exception of a handler to a FUSEError (pyfuse3 dies on anything else)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        except Exception:  # a bug: keep serving, but make it loud
            log.exception("internal error in %s", fn.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper


class SimulatedDisk(pyfuse3.Operations):
    """The FUSE operations: a root directory with ``disk`` and ``stats.json``."""

    enable_writeback_cache = False

    def __init__(self, disk: FailingDisk, image_fd: int, image: str) -> None:
        super().__init__()
        self.disk = disk
        self.image_fd = image_fd
        self.image = image
        self.spindle = trio.Lock()
        self.io_limiter = trio.CapacityLimiter(1)  # one spindle: one pread at a time
        self.hung_now = 0
        self.read_log: IO[str] | None = None  # --log-reads
        self.started = time.time()
        self._stamp_ns = time.time_ns()
        self._handles: dict[int, bytes | None] = {}  # fh -> stats snapshot, None for disk
        self._next_fh = 1

    # ------------------------------------------------------------------ pure helpers
    def stats_bytes(self) -> bytes:
        """The current stats.json content."""
        data = self.disk.stats()
        data["hung_now"] = self.hung_now
        data["image"] = self.image
        data["started"] = round(self.started, 3)  # no clock in here: the size stays put
        return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()

    def attrs(self, inode: int) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = inode
        if inode == ROOT:
            a.st_mode = stat.S_IFDIR | 0o555
            a.st_nlink = 2
        elif inode == DISK:
            a.st_mode = stat.S_IFREG | 0o444
            a.st_size = self.disk.size
            a.st_nlink = 1
            a.attr_timeout = a.entry_timeout = 300
        elif inode == STATS:
            a.st_mode = stat.S_IFREG | 0o444
            a.st_size = len(self.stats_bytes())
            a.st_nlink = 1
            a.attr_timeout = a.entry_timeout = 0
        else:
            raise pyfuse3.FUSEError(errno.ENOENT)
        a.st_uid = os.getuid()
        a.st_gid = os.getgid()
        a.st_blksize = 512
        a.st_blocks = (a.st_size + 511) // 512
        a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = self._stamp_ns
        return a

    # ------------------------------------------------------------------ metadata
    @fuse_errors
    async def getattr(self, inode: int, ctx: Any = None) -> pyfuse3.EntryAttributes:
        return self.attrs(inode)

    @fuse_errors
    async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None) -> Any:
        if parent_inode != ROOT:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        if name in (b".", b".."):
            return self.attrs(ROOT)
        if name not in NAMES:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self.attrs(NAMES[name])

    @fuse_errors
    async def setattr(self, inode: int, attr: Any, fields: Any, fh: Any, ctx: Any) -> Any:
        raise pyfuse3.FUSEError(errno.EROFS)

    @fuse_errors
    async def opendir(self, inode: int, ctx: Any) -> Any:
        if inode != ROOT:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return pyfuse3.FileHandleT(0)

    @fuse_errors
    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        entries = sorted(NAMES.items())
        for i, (name, inode) in enumerate(entries[start_id:], start_id):
            if not pyfuse3.readdir_reply(token, pyfuse3.FileNameT(name), self.attrs(inode), i + 1):
                break

    @fuse_errors
    async def statfs(self, ctx: Any) -> pyfuse3.StatvfsData:
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 512
        s.f_blocks = (self.disk.size + 511) // 512
        s.f_files = 3
        s.f_namemax = 255
        return s

    # ------------------------------------------------------------------ files
    @fuse_errors
    async def open(self, inode: int, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        if inode not in (DISK, STATS):
            raise pyfuse3.FUSEError(errno.EISDIR if inode == ROOT else errno.ENOENT)
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
            raise pyfuse3.FUSEError(errno.EROFS)  # the mount is "ro": the kernel says so first
        fh = self._next_fh
        self._next_fh += 1
        self._handles[fh] = None if inode == DISK else self.stats_bytes()
        # direct_io for both: every disk read reaches the model at the reader's size, and
        # stats.json is never served from a stale page cache
        return pyfuse3.FileInfo(fh=pyfuse3.FileHandleT(fh), direct_io=True, keep_cache=False)

    @fuse_errors
    async def release(self, fh: int) -> None:
        self._handles.pop(fh, None)

    @fuse_errors
    async def read(self, fh: int, off: int, size: int) -> bytes:
        try:
            snapshot = self._handles[fh]
        except KeyError:
            raise pyfuse3.FUSEError(errno.EBADF) from None
        if snapshot is not None:
            return snapshot[off : off + size]
        return await self.read_disk(off, size)

    async def read_disk(self, off: int, size: int) -> bytes:
        """One read of the simulated disk: plan, pread, sleep out the modelled time."""
        async with self.spindle:
            plan = self.disk.plan_read(off, size)
            if self.read_log is not None:  # --log-reads: every request, in order
                self.read_log.write(f"{off} {size} {'ok' if plan.ok else 'error'}\n")
                self.read_log.flush()
            if not plan.hang:
                deadline = trio.current_time() + plan.seconds
                data = b""
                if plan.ok and plan.size:
                    data = await self._pread(plan.size, off)
                await trio.sleep_until(deadline)
                if not plan.ok:
                    raise pyfuse3.FUSEError(errno.EIO)
                return data
        self.hung_now += 1
        try:
            await trio.sleep_forever()  # cancelled at shutdown; the kernel aborts the request
        finally:
            self.hung_now -= 1
        raise AssertionError("unreachable")

    async def _pread(self, size: int, off: int) -> bytes:
        if size <= INLINE_READ_MAX:
            return os.pread(self.image_fd, size, off)
        return await trio.to_thread.run_sync(
            os.pread, self.image_fd, size, off, limiter=self.io_limiter
        )


# ---------------------------------------------------------------------- mount and run
async def _watch_signals(receiver: Any, scope: trio.CancelScope) -> None:
    async for _signum in receiver:
        pyfuse3.terminate()
        scope.cancel()  # also cancels handlers waiting in hang areas
        return


async def serve(ops: SimulatedDisk, mountpoint: str, announce: Callable[[], None]) -> int:
    """Mount, serve until a signal or an external unmount, unmount; return the exit status."""
    options = {"ro", "fsname=ddfs-simulate", "subtype=ddfs", "default_permissions"}
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        try:
            pyfuse3.init(ops, mountpoint, options)
        except RuntimeError as exc:
            sys.stderr.write(f"ddfs: can't mount {mountpoint}: {exc}\n")
            return 1
        try:
            announce()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_watch_signals, signals, nursery.cancel_scope)
                await pyfuse3.main()
                nursery.cancel_scope.cancel()  # external unmount
        finally:
            pyfuse3.close(unmount=True)
    return 0


def _image_size(fd: int) -> int:
    return os.lseek(fd, 0, os.SEEK_END)  # works for block devices too


def main(
    image: str,
    mountpoint: str,
    bad: str | None = None,
    rate: str = "0",
    seek_ms: float = 0.0,
    error_ms: float = 0.0,
    weak: Sequence[str] = (),
    hang: Sequence[str] = (),
    foreground: bool = True,
    log_reads: str | None = None,
) -> int:
    """``ddfs simulate``: return the exit status (0 after a clean unmount)."""
    try:
        fd = os.open(image, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        sys.stderr.write(f"ddfs: {image}: Can't open input file: {exc.strerror}\n")
        return 1
    try:
        disk = build_disk(_image_size(fd), bad, rate, seek_ms, error_ms, weak, hang)
        if not foreground:
            kw = {
                "image": image,
                "mountpoint": mountpoint,
                "bad": bad,
                "rate": rate,
                "seek_ms": seek_ms,
                "error_ms": error_ms,
                "weak": weak,
                "hang": hang,
                "log_reads": log_reads,
            }
            return run_background(kw)
        ops = SimulatedDisk(disk, fd, image)
        if log_reads is not None:
            ops.read_log = open(log_reads, "a", encoding="ascii")  # noqa: SIM115
        line = SERVING.format(image=image, disk=os.path.join(mountpoint, "disk"))

        def announce() -> None:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

        return trio.run(serve, ops, mountpoint, announce)
    except DdfsError as exc:
        sys.stderr.write(f"ddfs: {exc.message}\n")
        return exc.exit_code
    finally:
        os.close(fd)
