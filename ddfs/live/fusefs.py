"""The pyfuse3 adapter of the live mount: inodes and attributes in, bytes or FUSEErrors out.

All decisions live in ``view.py`` (the tree) and ``reader.py`` (how a read is answered). Every
handler goes through one error boundary, so no exception ever reaches pyfuse3's main loop (which
would end the mount): unreadable data maps to EIO as a disk would answer, an OSError keeps its
errno, and anything unexpected is logged and answered with EIO.

Writes: without an overlay, opening for writing answers EROFS. With one, the image and partition
files take writes (handed to the reader, which puts them in the overlay) while ``mapfile`` and
``status.json`` stay read-only; the overlay is committed (data fsynced, then its map saved) on
``fsync``, ``flush`` (every close) and ``release``. The files' sizes never change: a write past
the end gets ENOSPC and a truncation EPERM, as on a disk.
"""

from __future__ import annotations

import errno
import functools
import itertools
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pyfuse3

from ddfs.live.reader import ImageReader, Unreadable
from ddfs.live.tree import ROOT_INODE, Node, SequentialDetector
from ddfs.live.view import View

log = logging.getLogger(__name__)
T = TypeVar("T")
TEXT_TTL = 1.0  # attributes of mapfile/status.json change all the time


def fuse_errors(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """The error boundary of every handler."""

    @functools.wraps(fn)
    async def wrapper(self: Operations, *args: Any) -> T:
        try:
            return await fn(self, *args)
        except pyfuse3.FUSEError:
            raise
        except Unreadable:
            raise pyfuse3.FUSEError(errno.EIO) from None  # what the disk itself would answer
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        except Exception:
            log.exception("internal error in %s", fn.__name__)
            self.internal_errors += 1
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper


class Operations(pyfuse3.Operations):
    """The operations over a :class:`View`: read-only, or writable into an overlay."""

    supports_dot_lookup = True
    enable_writeback_cache = False

    def __init__(self, view: View, reader: ImageReader) -> None:
        super().__init__()
        self.view = view
        self.reader = reader
        self.internal_errors = 0
        self._fh = itertools.count(1)
        self._handles: dict[int, tuple[Node, SequentialDetector | bytes]] = {}
        self._mtime = time.time_ns()

    def _attr(self, node: Node | None) -> pyfuse3.EntryAttributes:
        attr = pyfuse3.EntryAttributes()
        now = self._mtime
        if node is None:
            attr.st_ino = ROOT_INODE
            attr.st_mode = stat.S_IFDIR | 0o555
            attr.st_nlink = 2
            attr.st_size = 0
        else:
            attr.st_ino = node.inode
            attr.st_mode = node.mode
            attr.st_nlink = 1
            if node.is_data:
                attr.st_size = node.size
            else:
                attr.st_size = len(self.view.text_of(node))
                now = time.time_ns()
            attr.attr_timeout = TEXT_TTL
            attr.entry_timeout = TEXT_TTL
        attr.st_uid = os.getuid()
        attr.st_gid = os.getgid()
        attr.st_blksize = 4096
        attr.st_blocks = (attr.st_size + 511) // 512
        attr.st_atime_ns = attr.st_mtime_ns = attr.st_ctime_ns = now
        return attr

    def _node(self, inode: int) -> Node:
        node = self.view.node(inode)
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return node

    @fuse_errors
    async def getattr(self, inode: int, ctx: Any = None) -> pyfuse3.EntryAttributes:
        if inode == ROOT_INODE:
            return self._attr(None)
        return self._attr(self._node(inode))

    @fuse_errors
    async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None) -> Any:
        if parent_inode != ROOT_INODE:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        if name in (b".", b".."):
            return self._attr(None)
        node = self.view.lookup(os.fsdecode(name))
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attr(node)

    @fuse_errors
    async def opendir(self, inode: int, ctx: Any) -> int:
        if inode != ROOT_INODE:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return inode

    @fuse_errors
    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        for node in self.view.listing():
            if node.inode <= start_id:
                continue
            if not pyfuse3.readdir_reply(
                token, os.fsencode(node.name), self._attr(node), node.inode
            ):
                break

    @fuse_errors
    async def releasedir(self, fh: int) -> None:
        return None

    @fuse_errors
    async def open(self, inode: int, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        node = self._node(inode)
        if flags & os.O_ACCMODE != os.O_RDONLY and not (node.is_data and self.reader.writable):
            raise pyfuse3.FUSEError(errno.EROFS)
        fh = next(self._fh)
        if node.is_data:
            self._handles[fh] = (node, self.reader.detector())
        else:
            self._handles[fh] = (node, self.view.text_of(node))  # a snapshot per open
        # direct_io: every read reaches us, so a read after a rescue never sees stale pages
        return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False)

    @fuse_errors
    async def read(self, fh: int, off: int, size: int) -> bytes:
        node, state = self._handles[fh]
        if isinstance(state, bytes):
            return state[off : off + size]
        pos, n = self.view.disk_range(node, off, size)
        return await self.reader.read(pos, n, state)

    @fuse_errors
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        node, _state = self._handles[fh]
        if not node.is_data:
            raise pyfuse3.FUSEError(errno.EBADF)
        pos, n = self.view.disk_range(node, off, len(buf))
        if n == 0:
            raise pyfuse3.FUSEError(errno.ENOSPC)  # a disk does not grow
        return await self.reader.write(pos, buf[:n])

    @fuse_errors
    async def fsync(self, fh: int, datasync: bool) -> None:
        await self.reader.commit()

    @fuse_errors
    async def flush(self, fh: int) -> None:
        await self.reader.commit()

    @fuse_errors
    async def release(self, fh: int) -> None:
        self._handles.pop(fh, None)
        await self.reader.commit()

    @fuse_errors
    async def setattr(
        self, inode: int, attr: pyfuse3.EntryAttributes, fields: Any, fh: int | None, ctx: Any
    ) -> pyfuse3.EntryAttributes:
        node = None if inode == ROOT_INODE else self._node(inode)
        if node is None or not (node.is_data and self.reader.writable):
            raise pyfuse3.FUSEError(errno.EROFS)
        if fields.update_size and attr.st_size != node.size:
            raise pyfuse3.FUSEError(errno.EPERM)  # the size of a disk is what it is
        return self._attr(node)  # modes and times are not kept: accept and ignore them

    @fuse_errors
    async def statfs(self, ctx: Any) -> pyfuse3.StatvfsData:
        st = pyfuse3.StatvfsData()
        st.f_bsize = st.f_frsize = 4096
        st.f_blocks = self.view.image_size // 4096
        st.f_namemax = 255
        return st
