"""Issue 17: the edges of a long-running mount. One process per mapfile (a second ``ddfs
rescue`` or ``ddfs mount`` on a mapfile in use is refused, naming the holder, with nothing
written); a MAPFILE inside MOUNTPOINT is refused up front."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import run_ddfs
from tests.mountproc import live_mount, status, wait_for

pytestmark = pytest.mark.fuse


def test_one_process_per_mapfile(tmp_path: Path) -> None:
    infile = tmp_path / "in"
    infile.write_bytes(os.urandom(4 << 20))
    mapfile = tmp_path / "map"
    (tmp_path / "mnt").mkdir()
    (tmp_path / "mnt2").mkdir()
    (tmp_path / "link.map").symlink_to(mapfile)
    with live_mount(infile, tmp_path / "out", mapfile, tmp_path / "mnt", "-q") as mount:
        wait_for(lambda: status(tmp_path / "mnt")["finished"], 60, "the rescue did not end")
        for argv in (
            ["rescue", str(infile), str(tmp_path / "out2"), str(mapfile)],
            ["rescue", str(infile), str(tmp_path / "out2"), str(tmp_path / "link.map")],
            ["mount", str(infile), str(tmp_path / "out2"), str(mapfile), str(tmp_path / "mnt2")],
        ):
            res = run_ddfs(*argv, timeout=60)
            name = argv[3]
            want = f"ddfs: {name}: Mapfile is in use by another ddfs (pid {mount.proc.pid}).\n"
            assert (res.returncode, res.stderr) == (1, want), argv
            assert not (tmp_path / "out2").exists()
            assert not os.path.ismount(tmp_path / "mnt2")
    res = run_ddfs("rescue", "-q", str(infile), str(tmp_path / "out2"), str(mapfile))
    assert res.returncode == 0, res.stderr  # the lock went with the mount


def test_a_file_inside_the_mount_point_is_refused(tmp_path: Path) -> None:
    """Item 5: MAPFILE (and OUTFILE, the overlay) inside MOUNTPOINT is refused before anything
    is written; before, the stop could not save the map (``Software caused connection abort``)
    and all progress was lost."""
    infile = tmp_path / "in"
    infile.write_bytes(bytes(1 << 20))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    for args, what, path in (
        ([str(tmp_path / "out"), str(mnt / "map")], "Mapfile", mnt / "map"),
        ([str(mnt / "sub" / "out"), str(tmp_path / "map")], "Output file", mnt / "sub" / "out"),
        (["--overlay", str(mnt / "ov"), str(tmp_path / "out"), str(tmp_path / "map")], "Overlay",
         mnt / "ov"),
    ):  # fmt: skip
        res = run_ddfs("mount", *args[:-2], str(infile), *args[-2:], str(mnt), timeout=60)
        assert (res.returncode, res.stderr) == (
            1, f"ddfs: {path}: {what} is inside the mount point {mnt}.\n"
        ), args  # fmt: skip
        assert os.listdir(mnt) == [] and not os.path.ismount(mnt)
        assert not (tmp_path / "out").exists() and not (tmp_path / "map").exists()
