"""The FUSE adapter mounted in the test process (pytest-trio), and called directly."""

from __future__ import annotations

import errno
import functools
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pyfuse3
import pytest
import trio

from ddfs.live.fusefs import Operations
from ddfs.live.overlay import Overlay
from ddfs.live.reader import ImageReader
from ddfs.live.tree import IMAGE_INODE, ROOT_INODE
from ddfs.live.view import View
from engine.map.mapfile import parse_mapfile_text
from engine.ondemand.facade import build_live
from engine.options import RescueOptions
from tests.test_view import BAD, TESTMAP

pytestmark = pytest.mark.fuse
run_io = functools.partial(trio.to_thread.run_sync, abandon_on_cancel=True)


@asynccontextmanager
async def mount_in_process(
    tmp_path: Path, infile: Path, overlay: str | None = None
) -> AsyncIterator[tuple[Path, Operations]]:
    """The engine thread on ``infile`` (test map :data:`TESTMAP`) and the FUSE adapter mounted
    in this process at ``tmp_path/mnt``: read-only, or writable into ``overlay``."""
    (tmp_path / "tm").write_text(TESTMAP)
    opts = RescueOptions(test_map=str(tmp_path / "tm"))
    live, _ = build_live(
        str(infile), str(tmp_path / "out"), str(tmp_path / "map"), opts, plan_first=False
    )
    live.start()
    ov = Overlay.open(overlay, live.size) if overlay is not None else None
    view = View(live, live.size, writable=ov is not None)
    view.overlay = ov
    reader = ImageReader(view, str(tmp_path / "out"), timeout=5, overlay=ov)
    ops = Operations(view, reader)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    pyfuse3.init(ops, str(mnt), {"fsname=ddfs-test"} | (set() if ov else {"ro"}))
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pyfuse3.main)
            try:
                yield mnt, ops
            finally:
                pyfuse3.terminate()
    finally:
        pyfuse3.close(unmount=True)
        live.stop()
        await run_io(live.join, None)
        reader.close()
        if ov is not None:
            ov.close()
        live.close()
    assert not os.path.ismount(mnt)


@pytest.fixture
async def mounted(tmp_path: Path, random_file) -> AsyncIterator[tuple[Path, Path, Operations]]:
    infile = random_file(8 << 20)
    async with mount_in_process(tmp_path, infile) as (mnt, ops):
        yield mnt, infile, ops


async def test_reads_in_process(mounted: tuple[Path, Path, Operations]) -> None:
    mnt, infile, ops = mounted
    original = infile.read_bytes()
    assert sorted(await run_io(os.listdir, mnt)) == ["image", "mapfile", "status.json"]

    def read(pos: int, size: int) -> bytes:
        fd = os.open(mnt / "image", os.O_RDONLY)
        try:
            return os.pread(fd, size, pos)
        finally:
            os.close(fd)

    assert await run_io(read, 3 << 20, 1 << 20) == original[3 << 20 : 4 << 20]
    with pytest.raises(OSError) as info:
        await run_io(read, BAD[0], 4096)
    assert info.value.errno == errno.EIO
    text = await run_io((mnt / "mapfile").read_text)
    assert parse_mapfile_text(text).bmap.end == 8 << 20
    st = json.loads(await run_io((mnt / "status.json").read_text))
    assert st["ondemand"]["reads"] >= 1
    assert ops.internal_errors == 0


async def test_operations_called_directly(mounted: tuple[Path, Path, Operations]) -> None:
    _, _, ops = mounted
    attr = await ops.lookup(ROOT_INODE, b"image", None)
    assert attr.st_ino == IMAGE_INODE and attr.st_size == 8 << 20
    with pytest.raises(pyfuse3.FUSEError) as info:
        await ops.lookup(ROOT_INODE, b"nothing", None)
    assert info.value.errno == errno.ENOENT
    with pytest.raises(pyfuse3.FUSEError) as info:
        await ops.open(IMAGE_INODE, os.O_RDWR, None)
    assert info.value.errno == errno.EROFS
    fi = await ops.open(IMAGE_INODE, os.O_RDONLY, None)
    with pytest.raises(pyfuse3.FUSEError) as info:
        await ops.read(fi.fh, BAD[0], 512)
    assert info.value.errno == errno.EIO
    await ops.release(fi.fh)
