"""The output side: the image file or device, written with pwrite, fsynced before every map save.

Opened ``O_WRONLY|O_CREAT`` (``O_RDWR`` with ``-W``), never truncated unless ``-t``, never
pre-extended unless ``-p``; ``-S`` skips all-zero buffers and extends the file at the end; ``-x``
extends it to a minimum size. A failed or short write raises :class:`WriteError` (exit 1) with
ddrescue's message, ``OUTFILE: Write error: <strerror>``.

Long reads of a plain source (:meth:`Output.splice_from`) can be copied in the kernel instead:
:class:`Splice` moves the source's pages into a pipe and from the pipe into the output (Linux
``splice``), which saves copying every byte into a buffer and out again.
"""

from __future__ import annotations

import errno
import mmap
import os
import stat

from engine.errors import DdfsError, WriteError
from engine.rescue.source import GONE_ERRNOS, Source, SourceGone

SPARSE_PIECE = 65536  # -S: zero blocks of this size are left as holes
PIPE_SIZE = 1 << 20  # asked for the splice pipe (Linux allows 1 MiB unprivileged by default)
#: errnos of a splice the files do not support (before anything moved): use the buffer instead
SPLICE_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})
#: file systems whose files splice through the page cache exactly as they are read (FUSE is
#: not one: its direct-I/O files would be read through the page cache when spliced)
SPLICE_FILESYSTEMS = frozenset(
    {"tmpfs", "ramfs", "ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "jfs", "reiserfs"}
    | {"vfat", "msdos", "exfat", "ntfs3", "hfsplus", "udf", "iso9660", "squashfs"}
    | {"nfs", "nfs4", "overlay", "zfs"}
)


class Output:
    """The rescue target."""

    def __init__(
        self,
        path: str,
        truncate: bool = False,
        direct: bool = False,
        compare: bool = False,
        sparse: bool = False,
        synchronous: bool = False,
    ) -> None:
        self.path = path
        flags = (os.O_RDWR if compare else os.O_WRONLY) | os.O_CREAT | os.O_CLOEXEC
        if truncate:
            flags |= os.O_TRUNC
        if direct:
            flags |= os.O_DIRECT
        try:
            self.fd = os.open(path, flags, 0o666)
        except OSError as exc:
            if direct and exc.errno == errno.EINVAL:
                raise DdfsError("Direct disc access not available.") from None
            raise DdfsError(f"{path}: Can't open output file: {exc.strerror}") from None
        st = os.fstat(self.fd)
        self.is_regular = stat.S_ISREG(st.st_mode)
        self.compare = compare
        self.sparse = sparse
        self.synchronous = synchronous
        self.sparse_end = 0
        self.written = 0
        self.direct = direct
        self._abuf: mmap.mmap | None = None
        self._splice: Splice | None = None

    def write(self, pos: int, data: memoryview) -> None:
        """Write all of ``data`` at ``pos`` (``-S``: blocks of zeros are skipped, in pieces of
        at most :data:`SPARSE_PIECE` bytes, as ddrescue skips them cluster by cluster)."""
        size = len(data)
        if self.sparse and size > SPARSE_PIECE:
            for off in range(0, size, SPARSE_PIECE):
                self.write(pos + off, data[off : off + SPARSE_PIECE])
            return
        if self.sparse and not any(data):
            self.sparse_end = max(self.sparse_end, pos + size)
            return
        if self.compare:
            try:
                if os.pread(self.fd, size, pos) == data:
                    return
            except OSError:
                pass
        if self.direct:  # O_DIRECT wants a page-aligned buffer
            if self._abuf is None or len(self._abuf) < size:
                self._abuf = mmap.mmap(-1, max(size, 1 << 20))
            aligned = memoryview(self._abuf)[:size]
            aligned[:] = data
            data = aligned
        done = 0
        while done < size:
            try:
                n = os.pwrite(self.fd, data[done:] if done else data, pos + done)
            except InterruptedError:
                continue
            except OSError as exc:
                raise WriteError(f"{self.path}: Write error: {exc.strerror}") from None
            if n <= 0:
                raise WriteError(f"{self.path}: Write error.")
            done += n
        self.wrote(size)

    def wrote(self, size: int) -> None:
        """``size`` more bytes were written (``-y``: synced at once)."""
        self.written += size
        if self.synchronous:
            os.fsync(self.fd)

    def splice_from(self, source: Source) -> Splice | None:
        """A :class:`Splice` from ``source`` into this output, or None when the data must go
        through a buffer: ``-S``, ``-W`` and ``-D`` look at it or align it, and so do ``-d``,
        test mode and ``--bad-sector-data`` on the source's side. Only block devices and
        regular files are spliced, and source files only on :data:`SPLICE_FILESYSTEMS`."""
        if self._splice is None:
            if self.sparse or self.compare or self.direct or not hasattr(os, "splice"):
                return None
            mode = os.fstat(self.fd).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
                return None
            if not _plain_source(source):
                return None
            try:
                self._splice = Splice(source, self)
            except OSError:  # no pipe (too many open files): use the buffer
                return None
        return self._splice

    def fsync(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EROFS):
                raise WriteError(f"Error syncing output file: {exc.strerror}") from None

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def extend_to(self, size: int) -> None:
        """Make a regular output at least ``size`` bytes long (``-x``, ``-S``)."""
        if size <= self.size():
            return
        try:
            os.ftruncate(self.fd, size)
        except OSError:
            self.write(size - 1, memoryview(b"\0"))

    def preallocate(self, pos: int, size: int) -> None:
        """``-p``: reserve ``[pos, pos+size)`` on disk."""
        try:
            os.posix_fallocate(self.fd, pos, size)
        except OSError as exc:
            raise WriteError(f"Can't preallocate output file: {exc.strerror}") from None

    def close(self) -> None:
        if self._splice is not None:
            self._splice.close()
            self._splice = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Splice:
    """Copies ``[pos, pos+size)`` of a source to the output through a pipe, in the kernel.

    :meth:`copy` has :meth:`Source.read_into`'s meaning: the bytes moved from the source (all
    written to the output), and the errno that stopped it (none at EOF). Only the read's
    errno is returned; a failed write raises :class:`WriteError` as :meth:`Output.write` does.
    """

    def __init__(self, source: Source, output: Output) -> None:
        self.source = source
        self.output = output
        self.works = True  # False once the kernel refused these files
        self.moved = False  # whether anything was spliced yet
        self._r = self._w = -1
        self._r, self._w = os.pipe()
        self.chunk = _grow_pipe(self._w)

    def close(self) -> None:
        if self._r >= 0:
            os.close(self._r)
            os.close(self._w)
            self._r = self._w = -1

    def __del__(self) -> None:  # an output left open (tests): do not leak the pipe
        self.close()

    def copy(self, pos: int, size: int, out_pos: int) -> tuple[int, int] | None:
        """Copy as much of ``[pos, pos+size)`` as the source gives. Returns ``(copied,
        errno)``, or None when these files cannot be spliced (then nothing was read).

        Raises:
            SourceGone: the source itself is gone (as :meth:`Source.read_into`).
            WriteError: the output could not be written.
        """
        if not self.works:
            return None
        copied, err = 0, 0
        while copied < size:
            try:
                n = os.splice(
                    self.source.fd, self._w, min(size - copied, self.chunk), offset_src=pos + copied
                )
            except OSError as exc:
                if not self.moved and exc.errno in SPLICE_UNSUPPORTED:
                    self.works = False
                    return None
                err = exc.errno or errno.EIO
                break
            if n == 0:  # end of the input
                break
            self._drain(n, out_pos + copied)
            copied += n
            if not self.works:  # the output refused: the rest through a buffer
                return self._buffered(pos, size, out_pos, copied)
            self.moved = True
        if err in GONE_ERRNOS:
            raise SourceGone("Input file disappeared")
        return copied, err

    def _buffered(self, pos: int, size: int, out_pos: int, copied: int) -> tuple[int, int]:
        """The rest of a copy, once the output turned out not to take splices."""
        rest = memoryview(bytearray(size - copied))
        got, err = self.source.read_into(pos + copied, size - copied, rest)
        if got:
            self.output.write(out_pos + copied, rest[:got])
        return copied + got, err

    def _drain(self, n: int, at: int) -> None:
        """Write the ``n`` bytes in the pipe to the output at ``at``."""
        out = self.output
        done = 0
        while done < n:
            try:
                k = os.splice(self._r, out.fd, n - done, offset_dst=at + done)
            except OSError as exc:
                if not self.moved and exc.errno in SPLICE_UNSUPPORTED:
                    self.works = False  # written through a buffer, now and from now on
                    out.write(at + done, memoryview(_read_pipe(self._r, n - done)))
                    return
                self._broken()
                raise WriteError(f"{out.path}: Write error: {exc.strerror}") from None
            if k <= 0:
                self._broken()
                raise WriteError(f"{out.path}: Write error.")
            done += k
        out.wrote(n)

    def _broken(self) -> None:
        """After a failed write the pipe may still hold data: never use it again."""
        self.works = False
        self.close()


def _grow_pipe(fd: int) -> int:
    """Make the pipe hold :data:`PIPE_SIZE` bytes if allowed; return what it holds."""
    import fcntl

    try:
        return int(fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE))
    except OSError:  # over the limits: keep the default size
        return int(fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ))


def _read_pipe(fd: int, n: int) -> bytes:
    parts = []
    while n > 0:
        part = os.read(fd, n)
        if not part:
            break
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


def _plain_source(source: Source) -> bool:
    """Whether :meth:`Source.read_into` is a plain read of the file (nothing aligned, checked
    or refused on the way), from a file or device that splices as it reads."""
    if source.direct or source.test_map is not None:
        return False
    if getattr(source, "bad_sector_data", None) is not None:
        return False
    return _spliceable(source.fd)


def _spliceable(fd: int) -> bool:
    """A block device, or a regular file on one of :data:`SPLICE_FILESYSTEMS`."""
    st = os.fstat(fd)
    if stat.S_ISBLK(st.st_mode):
        return True
    return stat.S_ISREG(st.st_mode) and _fs_type(st.st_dev) in SPLICE_FILESYSTEMS


def _fs_type(dev: int) -> str:
    """The file system type of the mount with device number ``dev`` ("" if not found)."""
    want = f"{os.major(dev)}:{os.minor(dev)}"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) > 2 and fields[2] == want and " - " in line:
                    return line.split(" - ", 1)[1].split()[0]
    except OSError:
        pass
    return ""
