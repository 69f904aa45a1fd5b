"""The copy-on-write overlay: the pure model (ddfs/live/overlay.py), the reader's layers and writes
over a running engine, and the FUSE adapter mounted in the test process. No subprocess mounts here
(those are in test_overlay_tools.py)."""

from __future__ import annotations

import errno
import functools
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

import ddfs.live.overlay as overlay_mod
from ddfs.live.fusefs import Operations
from ddfs.live.overlay import SECTOR, Overlay, apply_overlay, map_path, read_info
from ddfs.live.reader import ImageReader, Unreadable
from ddfs.live.view import View
from engine.errors import DdfsError
from engine.map.mapfile import parse_mapfile
from tests.test_fusefs_inprocess import mount_in_process
from tests.test_view import BAD, engine

SIZE = 1 << 20
run_io = functools.partial(trio.to_thread.run_sync, abandon_on_cancel=True)


def claimed(path: Path) -> list[tuple[int, int]]:
    """The ranges the overlay map on disk claims."""
    bmap = parse_mapfile(map_path(str(path))).bmap
    return [(s, e - s) for s, e, st in bmap.blocks_from(0) if st == "+"]


# ------------------------------------------------------------------ the pure model
def test_create_write_commit_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ov"
    ov = Overlay.open(str(path), SIZE, output=str(tmp_path / "out"), source=str(tmp_path / "in"))
    try:
        assert os.path.getsize(path) == SIZE and os.stat(path).st_blocks == 0  # sparse
        assert read_info(map_path(str(path))).size == SIZE
        assert ov.pieces(0, 4096) == [(0, 4096, False)]
        ov.write(1024, b"a" * 1024)
        assert ov.pieces(0, 4096) == [(0, 1024, False), (1024, 1024, True), (2048, 2048, False)]
        assert ov.read(1024, 1024) == b"a" * 1024
        assert claimed(path) == []  # written, not committed: the map on disk claims nothing
        assert ov.commit() is True
        assert ov.commit() is False  # nothing new
        assert claimed(path) == [(1024, 1024)]
        ov.write(SIZE - SECTOR, b"z" * SECTOR)  # never committed
    finally:
        ov.close()
    again = Overlay.load(str(path))
    try:
        assert again.written() == [(1024, 1024)]
        assert again.read(1024, 1024) == b"a" * 1024
    finally:
        again.close()


def test_writes_are_whole_sectors(tmp_path: Path) -> None:
    ov = Overlay.open(str(tmp_path / "ov"), SIZE)
    try:
        for pos, size in ((100, 512), (512, 100), (-512, 512), (SIZE, 512)):
            with pytest.raises(ValueError):
                ov.write(pos, bytes(size))
    finally:
        ov.close()


def test_commit_syncs_data_before_the_map(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ov = Overlay.open(str(tmp_path / "ov"), SIZE)
    calls: list[str] = []
    real_fsync, real_save = os.fsync, overlay_mod.save_mapfile

    def fsync(fd: int) -> None:
        calls.append("fsync data" if fd == ov.fd else "fsync other")
        real_fsync(fd)

    def save(path: str, pieces) -> None:  # type: ignore[no-untyped-def]
        calls.append("save map")
        real_save(path, pieces)

    monkeypatch.setattr(overlay_mod.os, "fsync", fsync)
    monkeypatch.setattr(overlay_mod, "save_mapfile", save)
    try:
        ov.write(0, b"x" * 4096)
        ov.commit()
        assert [c for c in calls if c != "fsync other"] == ["fsync data", "save map"]

        def broken(fd: int) -> None:
            if fd == ov.fd:
                raise OSError(errno.EIO, "fsync failed")
            real_fsync(fd)

        monkeypatch.setattr(overlay_mod.os, "fsync", broken)
        ov.write(8192, b"y" * 512)
        with pytest.raises(OSError):
            ov.commit()
        assert ov.dirty  # will be tried again
        assert claimed(tmp_path / "ov") == [(0, 4096)]  # the old map, nothing unsynced claimed
    finally:
        ov.close()


def test_open_refusals(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"rescued" * 100)
    with pytest.raises(DdfsError, match="OUTFILE"):
        Overlay.open(str(out), SIZE, protect={"OUTFILE": str(out)})
    mapfile = tmp_path / "rescue"  # --overlay rescue with MAPFILE rescue.map, not made yet
    with pytest.raises(DdfsError, match="MAPFILE"):
        Overlay.open(str(mapfile), SIZE, protect={"MAPFILE": str(mapfile) + ".map"})
    assert not mapfile.exists()
    with pytest.raises(DdfsError, match="not a ddfs overlay"):
        Overlay.open(str(out), SIZE)  # a file with data and no map: never taken over
    ov = Overlay.open(str(tmp_path / "ov"), SIZE)
    try:
        with pytest.raises(DdfsError, match="in use"):
            Overlay.open(str(tmp_path / "ov"), SIZE)
    finally:
        ov.close()
    with pytest.raises(DdfsError, match="image of 1048576 bytes"):
        Overlay.open(str(tmp_path / "ov"), 2 * SIZE)
    with pytest.raises(DdfsError, match="No such overlay map"):
        Overlay.load(str(tmp_path / "nothing"))


def test_reopen_records_where_the_rescue_files_are(tmp_path: Path) -> None:
    path = str(tmp_path / "ov")
    Overlay.open(path, SIZE, output="/a/out").close()
    Overlay.open(path, SIZE, output=str(tmp_path / "out2"), output_offset=512).close()
    info = read_info(map_path(path))
    assert info.output == str(tmp_path / "out2") and info.output_offset == 512


def test_reset(tmp_path: Path) -> None:
    path = tmp_path / "ov"
    ov = Overlay.open(str(path), SIZE)
    ov.write(4096, os.urandom(65536))
    ov.commit()
    ov.reset()
    try:
        assert ov.written() == [] and claimed(path) == []
        assert ov.read(4096, 65536) == bytes(65536)
        assert os.stat(path).st_blocks == 0 and os.path.getsize(path) == SIZE
    finally:
        ov.close()


def test_apply_to_a_copy_never_to_the_output_unless_asked(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.write_bytes(b"s" * SIZE)
    out.write_bytes(b"o" * SIZE)
    copy = tmp_path / "copy"
    copy.write_bytes(out.read_bytes())
    ov = Overlay.open(str(tmp_path / "ov"), SIZE, output=str(out), source=str(src))
    try:
        ov.write(512, b"1" * 1024)
        ov.write(SIZE - 512, b"2" * 512)
        ov.commit()
        assert apply_overlay(ov, str(copy)) == (2, 1536)
        expected = bytearray(b"o" * SIZE)
        expected[512:1536] = b"1" * 1024
        expected[SIZE - 512 :] = b"2" * 512
        assert copy.read_bytes() == expected
        with pytest.raises(DdfsError, match="OUTFILE"):
            apply_overlay(ov, str(out))
        assert out.read_bytes() == b"o" * SIZE
        with pytest.raises(DdfsError, match="source"):
            apply_overlay(ov, str(src), to_output=True)
        small = tmp_path / "small"
        small.write_bytes(bytes(4096))
        with pytest.raises(DdfsError, match="Too small"):
            apply_overlay(ov, str(small))
        assert apply_overlay(ov, str(out), to_output=True) == (2, 1536)
        assert out.read_bytes() == expected
        assert src.read_bytes() == b"s" * SIZE
    finally:
        ov.close()


# ------------------------------------------------------------------ the reader's layers
async def test_reader_layers_and_partial_sector_writes(tmp_path: Path, random_file) -> None:
    infile = random_file(8 << 20)
    original = infile.read_bytes()
    with engine(tmp_path, infile, delay=0.001) as live:
        view = View(live, 8 << 20, writable=True)
        ov = Overlay.open(str(tmp_path / "ov"), 8 << 20)
        reader = ImageReader(view, str(tmp_path / "out"), timeout=10, overlay=ov)
        try:
            # a partial sector: the rest of the sector is read (rescued on demand) and merged
            pos = (5 << 20) + 100
            assert await reader.write(pos, b"HELLO") == 5
            assert ov.written() == [(5 << 20, SECTOR)]
            got = await reader.read(5 << 20, 4096)
            want = bytearray(original[5 << 20 : (5 << 20) + 4096])
            want[100:105] = b"HELLO"
            assert got == want
            # across two sectors, unaligned at both ends
            pos = (6 << 20) + 500
            await reader.write(pos, b"x" * 600)
            assert ov.written()[-1] == (6 << 20, 3 * SECTOR)
            want = bytearray(original[6 << 20 : (6 << 20) + 3 * SECTOR])
            want[500:1100] = b"x" * 600
            assert await reader.read(6 << 20, 3 * SECTOR) == want
            # whole sectors over the bad area: no read needed, and they read back
            await reader.write(BAD[0], b"r" * 4096)
            assert await reader.read(BAD[0], 4096) == b"r" * 4096
            # the rest of the bad area is still bad: the written part comes back alone (a
            # short read), and a read that starts in the rest gets EIO
            assert await reader.read(BAD[0], 8192) == b"r" * 4096
            with pytest.raises(Unreadable):
                await reader.read(BAD[0] + 4096, 4096)
            with pytest.raises(Unreadable):  # a partial sector over a bad one can't merge
                await reader.write(BAD[0] + 8192 + 10, b"q")
            await reader.commit()
            assert not ov.dirty
        finally:
            reader.close()
            ov.close()
    out = (tmp_path / "out").read_bytes()
    assert b"HELLO" not in out and out[BAD[0] : BAD[0] + 4096] != b"r" * 4096
    assert infile.read_bytes() == original


# ------------------------------------------------------------------ the adapter, mounted
@pytest.fixture
async def mounted_rw(tmp_path: Path, random_file) -> AsyncIterator[tuple[Path, Path, Operations]]:
    infile = random_file(8 << 20)
    async with mount_in_process(tmp_path, infile, str(tmp_path / "ov")) as (mnt, ops):
        yield mnt, infile, ops


@pytest.mark.fuse
async def test_writes_through_the_mount(mounted_rw: tuple[Path, Path, Operations]) -> None:
    mnt, infile, ops = mounted_rw
    tmp = mnt.parent
    original = infile.read_bytes()
    st = await run_io(os.stat, mnt / "image")
    assert stat.S_IMODE(st.st_mode) == 0o644
    assert stat.S_IMODE((await run_io(os.stat, mnt / "mapfile")).st_mode) == 0o444

    def write_and_sync() -> bytes:
        fd = os.open(mnt / "image", os.O_RDWR)
        try:
            assert os.pwrite(fd, b"patch", 3 << 20) == 5
            os.fsync(fd)
            return os.pread(fd, 16, (3 << 20) - 4)
        finally:
            os.close(fd)

    got = await run_io(write_and_sync)
    assert (
        got
        == original[(3 << 20) - 4 : 3 << 20] + b"patch" + original[(3 << 20) + 5 : (3 << 20) + 12]
    )
    assert claimed(tmp / "ov") == [(3 << 20, SECTOR)]  # committed by the fsync

    def refused(path: Path, flags: int) -> int:
        try:
            os.close(os.open(path, flags))
        except OSError as exc:
            return exc.errno or 0
        return 0

    assert await run_io(refused, mnt / "mapfile", os.O_WRONLY) == errno.EROFS
    assert await run_io(refused, mnt / "status.json", os.O_RDWR) == errno.EROFS

    def past_end() -> int:
        fd = os.open(mnt / "image", os.O_WRONLY)
        try:
            os.pwrite(fd, b"x", 8 << 20)
        except OSError as exc:
            return exc.errno or 0
        finally:
            os.close(fd)
        return 0

    assert await run_io(past_end) == errno.ENOSPC

    def truncate() -> int:
        try:
            os.truncate(mnt / "image", 4096)
        except OSError as exc:
            return exc.errno or 0
        return 0

    assert await run_io(truncate) == errno.EPERM
    status = json.loads(await run_io((mnt / "status.json").read_text))
    assert status["overlay"]["written_bytes"] == SECTOR
    assert status["overlay"]["uncommitted"] is False
    assert ops.internal_errors == 0
    assert b"patch" not in (tmp / "out").read_bytes()
    assert infile.read_bytes() == original
