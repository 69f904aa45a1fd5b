"""A full target: OUTFILE (and the mapfile) on a small tmpfs that fills up mid-rescue.

GNU ddrescue 1.27 runs side by side on the same situation. Both must exit 1 with the same
message (``OUTFILE: Write error: No space left on device``); the map ddfs leaves must claim no
byte that is not in the output, and must be accepted by ``ddrescuelog``; once the tmpfs is grown,
the same command resumes and completes the copy. With the map on the full filesystem as well,
the map is still saved (rewritten in place, as ddrescue does, when no second copy fits).
"""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ddfs_cmd, map_lines
from tests.faults import (
    check_map_claims,
    ddrescuelog_accepts,
    ranges_of,
    resize_tmpfs,
    tmpfs,
)
from tests.mountproc import live_mount, status, wait_for
from tests.oracle import DDRESCUE
from tests.simdisk import is_mounted

SIZE = 8 << 20


def tool_cmd(tool: str, *args: str) -> list[str]:
    if tool == "ddrescue":
        assert DDRESCUE, "GNU ddrescue (package gddrescue) must be installed: run `make test`"
        return [DDRESCUE, *args]
    return ddfs_cmd("rescue", *args)


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize("map_on_target", [False, True], ids=["map-elsewhere", "map-on-target"])
def test_full_target_exit_1_then_resume(tmp_path: Path, map_on_target: bool) -> None:
    data = random.Random(5).randbytes(SIZE)
    infile = tmp_path / "in"
    infile.write_bytes(data)
    messages = {}
    for tool in ("ddrescue", "ddfs"):
        with tmpfs(tmp_path / "target", "3m") as target:  # the same path for both tools
            out = target / "out"
            mp = (target if map_on_target else tmp_path) / f"{tool}.map"
            argv = tool_cmd(tool, str(infile), str(out), str(mp))
            res = run(argv)
            assert res.returncode == 1, f"{tool}: {res.returncode} {res.stderr}"
            last = res.stderr.strip().splitlines()[-1]
            messages[tool] = last.split(": ", 1)[1]
            assert "Traceback" not in res.stderr
            # the map claims nothing that is not in the output, and ddrescuelog reads it
            assert ddrescuelog_accepts(mp).returncode == 0
            rescued, _ = check_map_claims(mp, out, data, [])
            assert rescued >= 1 << 20, f"{tool} saved no progress: {map_lines(mp)}"
            if tool == "ddfs":
                assert map_lines(mp)[0].split()[1] == "?", "the phase stays after the error"
                leftovers = [p.name for p in mp.parent.iterdir() if ".tmp" in p.name]
                assert not leftovers, leftovers
            # free space: the same command resumes and completes
            resize_tmpfs(target, "16m")
            res = run(argv)
            assert res.returncode == 0, f"{tool} resume: {res.stderr}"
            assert out.read_bytes() == data
            assert ranges_of(mp, "+") == [(0, SIZE)]
            assert map_lines(mp)[0].split()[1] == "+"
    assert messages["ddfs"] == messages["ddrescue"]
    assert messages["ddfs"].endswith("/out: Write error: No space left on device")


@pytest.mark.fuse
def test_full_target_under_the_mount(tmp_path: Path) -> None:
    """``ddfs mount``: the write error stops the engine; the mount keeps serving what was
    rescued, exits 1 with the message once unmounted, and the map is saved truthfully."""
    data = random.Random(6).randbytes(SIZE)
    infile = tmp_path / "in"
    infile.write_bytes(data)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mp = tmp_path / "map"
    with tmpfs(tmp_path / "target", "3m") as target:
        out = target / "out"
        try:
            with live_mount(infile, out, mp, mnt, "-q", "--no-metadata-first") as m:
                wait_for(lambda: status(mnt)["phase"] == "stopped", 30, "the engine went on")
                st = status(mnt)
                assert st["stop_reason"] == f"{out}: Write error: No space left on device", st
                rescued = st["bytes"]["finished"]
                with open(mnt / "image", "rb") as fh:
                    assert fh.read(65536) == data[:65536]  # rescued data is still served
                assert subprocess.run(["umount", str(mnt)]).returncode == 0
                start = time.monotonic()
                rc = m.wait(20)
                assert rc == 1, (rc, m.stderr())
                assert time.monotonic() - start < 15
                err = m.stderr()
                assert f"{out}: Write error: No space left on device" in err, err
                assert "Traceback" not in err
        finally:
            assert not is_mounted(mnt)
        assert ddrescuelog_accepts(mp).returncode == 0
        done, _ = check_map_claims(mp, out, data, [])
        assert done >= 1 << 20 and done == rescued
        resize_tmpfs(target, "16m")
        res = run(ddfs_cmd("rescue", "-q", str(infile), str(out), str(mp)))
        assert res.returncode == 0, res.stderr
        assert out.read_bytes() == data


def test_a_map_that_outgrows_a_full_disk_stays_whole(tmp_path: Path) -> None:
    """A fault-campaign find (issue 17): the in-place save on a full filesystem truncated the
    old map and then ran out of space mid-write, leaving a map cut mid-line that stopped every
    later run (exit 2). Now the room is reserved first: without it the save fails and the old
    map stays whole; with it the new map is written over the old one."""
    from engine.errors import DdfsError
    from engine.map.blockmap import BlockMap
    from engine.map.book import MapBook
    from engine.map.mapfile import MapData, parse_mapfile

    with tmpfs(tmp_path / "t", "64k") as mnt:
        path = mnt / "map"
        small = BlockMap(1 << 30)
        book = MapBook(MapData(bmap=small), [(0, 1 << 30)], str(path), None, -1, -1)
        book.save("# header\n")
        old = path.read_bytes()
        (mnt / "fill").write_bytes(b"x" * 60000)  # (tmpfs pages: the disk is now all but full)
        for i in range(600):  # a map of 1200 lines (31 kB): far more than the space left
            small.set_status(i * 8192, 4096, "-")
        with pytest.raises(DdfsError):
            book.save("# header\n")
        assert path.read_bytes() == old  # whole, and parses
        assert parse_mapfile(str(path)).bmap.end == 1 << 30
        (mnt / "fill").unlink()
        book.save("# header\n")  # room again: the new map replaces it
        assert parse_mapfile(str(path)).bmap.count_of("-") == 600
