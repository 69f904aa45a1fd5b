"""The input side: a read-only source (file or block device) and ddrescue's read primitive.

:meth:`Source.read_into` reads ``size`` bytes at ``pos`` into a buffer and returns
``(copied, errno)`` exactly as ddrescue's read loop sees it (a short count with no errno is EOF).
The source is opened ``O_RDONLY`` (plus ``O_DIRECT`` with ``-d``), always. In test mode (``-H``)
a read not wholly inside the finished blocks of the test map fails with EIO without touching the
input, as in ddrescue.

Beyond ddrescue: a read that fails because the source itself is gone (the errnos of
:data:`GONE_ERRNOS`, such as ENOTCONN from a FUSE source whose server died, where ``stat`` of
the path still answers from the kernel's cache) raises :class:`SourceGone` before anything is
recorded. ddrescue counts them as read errors and marks good areas bad until its ``stat`` of
the path fails (see docs/reliability.md).
"""

from __future__ import annotations

import errno
import mmap
import os
import stat

from engine.errors import DdfsError, FatalReadError
from engine.map.blockmap import FINISHED, BlockMap

#: errnos that end the run at once when nothing was read (as in ddrescue 1.27)
FATAL_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EBADF,
        errno.EBUSY,
        errno.EISDIR,
        errno.ENOBUFS,
        errno.ENODEV,
        errno.ENOENT,
        errno.ENOMEM,
        errno.ENOSYS,
        errno.ENXIO,
        errno.EPERM,
        errno.ESPIPE,
    }
)


#: errnos that say the source itself is gone, not a sector: the server of a FUSE source died
#: (ENOTCONN) or its connection was aborted (ECONNABORTED), a network source shut down
GONE_ERRNOS = frozenset({errno.ENOTCONN, errno.ECONNABORTED, errno.ESHUTDOWN})


class SourceGone(DdfsError):
    """The input stopped existing mid-rescue (exit 1, ``Input file disappeared``)."""


def device_size(fd: int) -> int:
    """Size of an open file or block device, or -1 when it cannot be known."""
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode):
        return st.st_size
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        os.lseek(fd, 0, os.SEEK_SET)
        return size if size > 0 else -1
    except OSError:
        return -1


class Source:
    """A read-only input with ddrescue's read semantics.

    Args:
        path: file or block device.
        sector_size: the ``-b`` hard block size; O_DIRECT reads are widened to it.
        direct: open with ``O_DIRECT`` (``-d``).
        test_map: the ``-H`` test map; only its ``+`` blocks are readable.
    """

    def __init__(
        self,
        path: str,
        sector_size: int = 512,
        direct: bool = False,
        test_map: BlockMap | None = None,
    ) -> None:
        self.path = path
        self.sector_size = sector_size
        self.direct = direct
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
        if direct:
            flags |= os.O_DIRECT
        try:
            self.fd = os.open(path, flags)
        except OSError as exc:
            if direct and exc.errno == errno.EINVAL:
                raise DdfsError("Direct disc access not available.") from None
            raise DdfsError(f"Can't open input file: {exc.strerror}") from None
        st = os.fstat(self.fd)
        self.dev_ino = (st.st_dev, st.st_ino)
        self.rdev = st.st_rdev if stat.S_ISBLK(st.st_mode) else None
        self.is_regular = stat.S_ISREG(st.st_mode)
        self.real_size = device_size(self.fd)
        self.test_map = test_map
        self._good: list[tuple[int, int]] = []
        self.size = self.real_size
        if test_map is not None:
            self._good = [(p, p + s) for p, s, c in test_map if c == FINISHED]
            last = self._good[-1][1] if self._good else 0
            self.size = last if self.real_size < 0 else min(self.real_size, last)
        self._abuf: mmap.mmap | None = None
        #: ``--bad-sector-data``: a whole sector of this content is a read error (1.29.1)
        self.bad_sector_data: bytes | None = None
        #: ``--continue-on-errno``: errnos that are read errors, not the end of the run (1.29)
        self.continue_errnos: frozenset[int] = frozenset()

    def close(self) -> None:
        """Close the input; an error is ignored (a vanished FUSE or network source answers
        ENOTCONN even to close, and nothing was written through this descriptor)."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            try:
                os.close(fd)
            except OSError:
                pass
        if self._abuf is not None:
            self._abuf.close()
            self._abuf = None

    def _readable(self, pos: int, end: int) -> bool:
        from bisect import bisect_right

        i = bisect_right(self._good, (pos, 2**63)) - 1
        return i >= 0 and self._good[i][0] <= pos and end <= self._good[i][1]

    def read_into(self, pos: int, size: int, buf: memoryview) -> tuple[int, int]:
        """Read ``[pos, pos+size)`` into ``buf[:size]``; return ``(copied, errno)``."""
        if self.test_map is not None and not self._readable(pos, pos + size):
            return 0, errno.EIO
        if self.direct or self.bad_sector_data is not None:
            result = self._read_direct(pos, size, buf)
        else:
            result = _read_loop(self.fd, pos, buf[:size])
        if result[1] in GONE_ERRNOS:
            # not a bad sector: nothing is recorded for this read, so a resume once the
            # source is back reads it again (ddrescue would mark it, and all the rest, bad)
            raise SourceGone("Input file disappeared")
        return result

    def _read_direct(self, pos: int, size: int, buf: memoryview) -> tuple[int, int]:
        """Read whole sectors (``-d``, ``--bad-sector-data``) and hand on the part asked for."""
        ss = self.sector_size
        start = pos - pos % ss
        end = -(-(pos + size) // ss) * ss
        need = end - start
        if self._abuf is None or len(self._abuf) < need:
            if self._abuf is not None:
                self._abuf.close()
            self._abuf = mmap.mmap(-1, max(need, 1 << 20))
        aligned = memoryview(self._abuf)[:need]
        try:
            got, err = _read_loop(self.fd, start, aligned)
            if self.bad_sector_data is not None:
                got, err = _cut_at_bad_data(self._abuf, got, err, self.bad_sector_data)
            head = pos - start
            copied = max(0, min(got - head, size))
            if copied:
                buf[:copied] = aligned[head : head + copied]
            if err and copied < size:
                return copied, err
            return copied, 0
        finally:
            aligned.release()

    def reread(self, pos: int, size: int) -> tuple[bytes, int]:
        """Read ``[pos, pos+size)`` from the input itself, past the test map (``-J`` checks the
        input, as ddrescue does). Returns the bytes read and the errno of a failure."""
        buf = memoryview(bytearray(size))
        if self.direct:
            copied, err = self._read_direct(pos, size, buf)
        else:
            copied, err = _read_loop(self.fd, pos, buf)
        return bytes(buf[:copied]), err

    def reopen(self) -> None:
        """``-O``: close the input and open it again, with the same flags (read-only).

        Raises:
            DdfsError: ddrescue's message when it cannot be opened or is no longer seekable.
        """
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | (os.O_DIRECT if self.direct else 0)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        try:
            self.fd = os.open(self.path, flags)
        except OSError as exc:
            raise DdfsError(f"{self.path}: Can't reopen input file: {exc.strerror}") from None
        try:
            os.lseek(self.fd, 0, os.SEEK_END)
        except OSError as exc:
            raise DdfsError(
                f"{self.path}: Input file has become not seekable: {exc.strerror}"
            ) from None

    def check_present(self) -> None:
        """After a read error: ddrescue stats the input path and stops if it is gone."""
        try:
            os.stat(self.path)
        except OSError:
            raise DdfsError("Input file disappeared") from None


def _read_loop(fd: int, pos: int, view: memoryview) -> tuple[int, int]:
    """pread until ``view`` is full, EOF or an error; retry on EINTR."""
    copied = 0
    size = len(view)
    while copied < size:
        try:
            # the first (usually only) call reads into the whole view: no slice, no list
            n = os.preadv(fd, (view[copied:] if copied else view,), pos + copied)
        except InterruptedError:
            continue
        except OSError as exc:
            return copied, exc.errno or errno.EIO
        if n == 0:
            break
        copied += n
    return copied, 0


def _cut_at_bad_data(data: mmap.mmap, got: int, err: int, bad: bytes) -> tuple[int, int]:
    """The first whole sector of ``data[:got]`` equal to ``bad``, and what follows it, failed
    with EIO (a sector-aligned match only)."""
    ss = len(bad)
    end = got - got % ss
    i = data.find(bad, 0, end)
    while i >= 0:
        if i % ss == 0:
            return i, errno.EIO
        i = data.find(bad, i - i % ss + ss, end)
    return got, err


def classify_error(
    err: int, copied: int, non_fatal: frozenset[int] = frozenset(), path: str = ""
) -> None:
    """Raise for the errnos ddrescue treats as fatal, unless ``--continue-on-errno`` names
    them; return for an ordinary read error. The message is ddrescue 1.30's: the input's
    name, the error and its number."""
    if copied == 0 and err in FATAL_ERRNOS and err not in non_fatal:
        where = f"{path}: " if path else ""
        raise FatalReadError(
            f"{where}Fatal error reading the input file: {os.strerror(err)} (errno={err})"
        )
    if err == errno.EINVAL:
        raise FatalReadError("Unaligned read error. Is sector size correct?")
