"""The output side: the image file or device, written with pwrite, fsynced before every map save.

Opened ``O_WRONLY|O_CREAT`` (``O_RDWR`` with ``-W``), never truncated unless ``-t``, never
pre-extended unless ``-p``; ``-S`` skips all-zero buffers and extends the file at the end; ``-x``
extends it to a minimum size. A failed or short write raises :class:`WriteError` (exit 1) with
ddrescue's message, ``OUTFILE: Write error: <strerror>``.
"""

from __future__ import annotations

import errno
import mmap
import os
import stat

from engine.errors import DdfsError, WriteError

SPARSE_PIECE = 65536  # -S: zero blocks of this size are left as holes


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
            raise DdfsError(f"Can't open output file: {exc.strerror}") from None
        st = os.fstat(self.fd)
        self.is_regular = stat.S_ISREG(st.st_mode)
        self.compare = compare
        self.sparse = sparse
        self.synchronous = synchronous
        self.sparse_end = 0
        self.written = 0
        self.direct = direct
        self._abuf: mmap.mmap | None = None

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
        self.written += size
        if self.synchronous:
            os.fsync(self.fd)

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
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
