"""Issue 17: the edges of a long-running mount. One process per mapfile (a second ``ddfs
rescue`` or ``ddfs mount`` on a mapfile in use is refused, naming the holder, with nothing
written); a MAPFILE inside MOUNTPOINT is refused up front; a read over a bad sector returns
the good bytes before it."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ddfs.live.loops import loops_under
from tests.conftest import map_lines, run_ddfs, run_ddrescue
from tests.mountproc import live_mount, status, wait_for
from tests.simdisk import abort_fuse, ddfs_argv, loop_device
from tests.test_mount import write_testmap

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


def test_a_read_over_a_bad_sector_returns_the_good_bytes_before_it(tmp_path: Path) -> None:
    """Item 8: a 1 MiB read through the mount that reaches one bad sector returns the good
    bytes before it (a short read) instead of EIO for the whole request; the read at the bad
    sector gets EIO. So ``cp`` keeps every byte up to the bad sector, and GNU ddrescue reading
    the mount loses exactly the bad sector."""
    size, bad = 4 << 20, (1 << 20) + 40960
    original = os.urandom(size)
    infile = tmp_path / "in"
    infile.write_bytes(original)
    write_testmap(tmp_path / "bad.map", size, [(bad, 512)])
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    files = (infile, tmp_path / "out", tmp_path / "map", mnt)
    with live_mount(*files, "-q", "-H", str(tmp_path / "bad.map")):
        wait_for(lambda: status(mnt)["finished"], 60, "the rescue did not end")
        fd = os.open(mnt / "image", os.O_RDONLY)
        try:
            assert os.pread(fd, 1 << 20, 1 << 20) == original[1 << 20 : bad]
            with pytest.raises(OSError) as info:
                os.pread(fd, 1 << 20, bad)
            assert info.value.errno == errno.EIO
        finally:
            os.close(fd)
        cp = subprocess.run(["cp", str(mnt / "image"), str(tmp_path / "cp")], capture_output=True)
        assert cp.returncode != 0  # cp stops at the error, with every byte before it
        assert (tmp_path / "cp").read_bytes()[:bad] == original[:bad]
        res = run_ddrescue("-q", str(mnt / "image"), str(tmp_path / "dd"), str(tmp_path / "dd.map"))
        assert res.returncode == 0, res.stderr
    copy = (tmp_path / "dd").read_bytes()
    assert copy[:bad] == original[:bad] and copy[bad + 512 :] == original[bad + 512 :]
    blocks = [line.split() for line in map_lines(tmp_path / "dd.map")[1:]]
    assert [b for b in blocks if b[2] != "+"] == [[f"0x{bad:08X}", "0x00000200", "-"]]


def test_a_repair_session_leaves_the_rescue_files_as_they_were(tmp_path: Path) -> None:
    """Item 6: ``ddfs mount --overlay`` on a finished rescue, with writes through the overlay:
    MAPFILE (its header included) and OUTFILE are bit for bit and time for time as before;
    only the overlay holds the repair."""
    infile = tmp_path / "in"
    infile.write_bytes(os.urandom(2 << 20))
    out, mapfile = tmp_path / "out", tmp_path / "map"
    assert run_ddfs("rescue", "-q", str(infile), str(out), str(mapfile)).returncode == 0

    def state() -> list[tuple[bytes, int]]:
        return [(p.read_bytes(), p.stat().st_mtime_ns) for p in (out, mapfile)]

    before = state()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with live_mount(infile, out, mapfile, mnt, "-q", "--overlay", str(tmp_path / "ov")):
        wait_for(lambda: status(mnt)["finished"], 60, "the session did not settle")
        with open(mnt / "image", "r+b") as fh:
            fh.seek(8192)
            fh.write(b"repaired" * 512)
            fh.flush()
            os.fsync(fh.fileno())
    assert state() == before
    assert (tmp_path / "ov").stat().st_size > 0


def ext4_disk(tmp_path: Path) -> Path:
    """16 MiB, GPT, p1 ext4 with a file."""
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as fh:
        fh.truncate(16 << 20)
    subprocess.run(["sfdisk", "-q", str(disk)], input="label: gpt\n,,L\n", text=True, check=True)
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "hello.txt").write_text("hello\n")
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-d", str(tmp_path / "root"), "-E", "offset=1048576",
         str(disk), "12M"],
        check=True,
    )  # fmt: skip
    return disk


def test_a_stop_waits_for_the_users_of_the_mount(tmp_path: Path) -> None:
    """Item 3: SIGINT while ``MOUNT/p1`` is attached to a loop device and mounted: the rescue
    stops and the map is saved at once, the mount stays (the mounted ext4 goes on reading, no
    I/O error) and says who uses it; once they are gone, ddfs ends with 130."""
    disk = ext4_disk(tmp_path)
    mnt, fsmnt = tmp_path / "mnt", tmp_path / "fs"
    mnt.mkdir()
    fsmnt.mkdir()
    with live_mount(disk, tmp_path / "out", tmp_path / "map", mnt, "-q") as mount:
        wait_for(lambda: status(mnt)["finished"], 60, "the rescue did not end")
        with loop_device(mnt / "p1") as dev:
            subprocess.run(["mount", "-o", "ro", dev, str(fsmnt)], check=True)
            try:
                mount.proc.send_signal(signal.SIGINT)
                wait_for(lambda: "in use by" in mount.stderr(), 20, "nothing said")
                time.sleep(1.5)
                assert mount.proc.poll() is None and os.path.ismount(mnt)
                assert (fsmnt / "hello.txt").read_text() == "hello\n"  # still served
                said = mount.stderr()
                assert f"{dev} (p1, mounted on {fsmnt})" in said, said
            finally:
                subprocess.run(["umount", str(fsmnt)], check=True)
        assert mount.proc.wait(timeout=30) == 128 + signal.SIGINT or mount.proc.returncode == -2
    assert not os.path.ismount(mnt)
    assert map_lines(tmp_path / "map")[1:] == ["0x00000000  0x01000000  +"]


def test_the_next_start_clears_what_a_killed_mount_left(tmp_path: Path) -> None:
    """Item 4: ``kill -9`` of ``ddfs mount --loop`` leaves its loop devices holding the dead
    FUSE connection; the next ``ddfs mount`` there detaches them, removes the dead mount, says
    so, and runs; nothing is left once it has stopped."""
    disk = ext4_disk(tmp_path)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    files = [str(p) for p in (disk, tmp_path / "out", tmp_path / "map", mnt)]
    first = subprocess.Popen(
        ddfs_argv("mount", "-q", "--loop", *files), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: len(loops_under(str(mnt))) == 2, 30, "no loop devices")
        first.kill()
        first.wait()
        left = [dev for dev, _ in loops_under(str(mnt))]
        assert len(left) == 2
        with live_mount(*files[:3], mnt, "-q") as again:
            wait_for(lambda: "removed" in again.stderr(), 30, "nothing said")
            said = again.stderr()
            assert f"ddfs: {mnt}: a dead ddfs mount removed; its loop device(s) " in said, said
            assert all(dev in said for dev in left)
            wait_for(lambda: status(mnt)["finished"], 60, "the rescue did not end")
        assert loops_under(str(mnt)) == [] and not os.path.ismount(mnt)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        for dev, _ in loops_under(str(mnt)):
            subprocess.run(["losetup", "-d", dev], check=False)
        if os.path.ismount(mnt):
            abort_fuse(mnt)
