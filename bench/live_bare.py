"""The bare FUSE server of the live-mount benchmark: the ceiling of any pyfuse3 server.

:func:`serve_bare` is the smallest possible pyfuse3 server (one ``direct_io`` file, ``os.pread``
in the trio thread); it runs as a child, ``python bench/live_mount.py --bare-fuse-server IMAGE
MOUNTPOINT``, started and ended by :func:`bare_fuse`. The sequential part of the benchmark
(``bench/live_sequential.py``) reads through it to compare ``ddfs mount`` with what pyfuse3 can
reach at all on this machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BARE_FLAG = "--bare-fuse-server"
# the command line the child is started with (it dispatches BARE_FLAG to serve_bare)
LIVE_MOUNT_SCRIPT = str(Path(__file__).resolve().with_name("live_mount.py"))


def serve_bare(image: str, mountpoint: str) -> int:
    """The smallest pyfuse3 server: one read-only file ``image``, ``direct_io``, inline pread.

    Run as ``python bench/live_mount.py --bare-fuse-server IMAGE MOUNTPOINT``: the ceiling of a
    pyfuse3 server on this machine, the most ``ddfs mount`` could reach for finished data.
    It serves until unmounted.
    """
    import errno
    import stat

    import pyfuse3
    import trio

    fd = os.open(image, os.O_RDONLY)
    size = os.lseek(fd, 0, os.SEEK_END)
    file_ino = pyfuse3.ROOT_INODE + 1

    class Bare(pyfuse3.Operations):  # type: ignore[misc]
        def _attr(self, ino: int) -> Any:
            attr = pyfuse3.EntryAttributes()
            attr.st_ino = ino
            is_file = ino == file_ino
            attr.st_mode = (stat.S_IFREG | 0o444) if is_file else (stat.S_IFDIR | 0o555)
            attr.st_size = size if is_file else 0
            attr.st_nlink = 1
            attr.attr_timeout = attr.entry_timeout = 60
            return attr

        async def getattr(self, inode: int, ctx: Any = None) -> Any:
            return self._attr(inode)

        async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None) -> Any:
            if name != b"image":
                raise pyfuse3.FUSEError(errno.ENOENT)
            return self._attr(file_ino)

        async def open(self, inode: int, flags: int, ctx: Any) -> Any:
            return pyfuse3.FileInfo(fh=inode, direct_io=True, keep_cache=False)

        async def read(self, fh: int, off: int, size: int) -> bytes:
            return os.pread(fd, size, off)

    async def main() -> None:
        pyfuse3.init(Bare(), mountpoint, {"ro", "fsname=bench-bare"})
        try:
            await pyfuse3.main()
        finally:
            pyfuse3.close(unmount=True)

    trio.run(main)
    return 0


@contextmanager
def bare_fuse(image: Path, mountpoint: Path) -> Iterator[Path]:
    """Serve ``image`` with :func:`serve_bare` in a child; yield ``MOUNTPOINT/image``.

    The mount is removed and the child ended by its handle in the end (``tests.simdisk``).
    """
    from tests.simdisk import SimulateProcess

    mnt = os.path.realpath(mountpoint)
    argv = [sys.executable, LIVE_MOUNT_SCRIPT, BARE_FLAG, str(image), mnt]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        server = SimulateProcess(proc, err, mnt)
        try:
            server.wait_mounted()
            yield Path(mnt) / "image"
        finally:
            server.stop()
