"""Lifecycle of ``ddfs mount``: umount, --loop, a dead mount left by a crash, read-ahead."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import map_lines, run_ddfs
from tests.mountproc import live_mount, status, wait_for
from tests.simdisk import abort_fuse, is_mounted, simulate_process, simulated_disk
from tests.test_mount import write_testmap
from tests.test_partitions import LAYOUTS, make_disk

pytestmark = pytest.mark.fuse


def test_umount_stops_cleanly_and_map_is_complete(tmp_path: Path, random_file) -> None:
    infile = random_file(4 << 20)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with live_mount(infile, tmp_path / "out", tmp_path / "map", mnt, "-q") as m:
        wait_for(lambda: status(mnt)["phase"] == "finished", 30, "rescue did not finish")
        assert is_mounted(mnt)  # stays up after the schedule is over
        assert subprocess.run(["umount", str(mnt)]).returncode == 0
        assert m.wait(20) == 0, m.stderr()
    lines = map_lines(tmp_path / "map")
    assert lines[0].split()[1] == "+" and lines[1:] == ["0x00000000  0x00400000  +"]
    assert (tmp_path / "out").read_bytes() == infile.read_bytes()


def test_loop_devices_for_image_and_partitions(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    make_disk(disk, LAYOUTS["mbr with logicals"])
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with live_mount(disk, tmp_path / "out", tmp_path / "map", mnt, "-q", "--loop") as m:
        wait_for(lambda: m.stderr().count("attached as") >= 5, 30, "loop devices")
        names = dict(
            line.split(" attached as ")
            for line in m.stderr().replace("ddfs: ", "").splitlines()
            if "attached as" in line
        )
        assert sorted(names) == ["image", "p1", "p2", "p5", "p6", "p7"][: len(names)]
        with open(names["p5"], "rb") as dev:
            data = dev.read()
        assert len(data) == 4 << 20
        assert data == disk.read_bytes()[(18 << 20) : (22 << 20)]
        m.proc.send_signal(signal.SIGTERM)
        assert m.wait(30) == -signal.SIGTERM, m.stderr()
    for dev in names.values():
        backing = f"/sys/block/{os.path.basename(dev)}/loop/backing_file"
        assert not os.path.exists(backing), f"{dev} left attached"


def test_dead_mount_is_detected(tmp_path: Path, random_file) -> None:
    infile = random_file(1 << 20)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        with live_mount(infile, tmp_path / "out", tmp_path / "map", mnt, "-q") as m:
            m.proc.kill()  # a crash: the mount stays behind, dead
            m.proc.wait(10)
            # the next mount there removes the dead one, says so, and runs (issue 17 item 4)
            with live_mount(infile, tmp_path / "o2", tmp_path / "m2", mnt, "-q") as again:
                wait_for(lambda: "removed" in again.stderr(), 30, "nothing said")
                assert again.stderr() == f"ddfs: {mnt}: a dead ddfs mount removed\n"
                wait_for(lambda: status(mnt)["finished"], 60, "the rescue did not end")
    finally:
        if is_mounted(mnt):
            abort_fuse(mnt)
    assert not is_mounted(mnt)


def test_sequential_reader_gets_read_ahead(tmp_path: Path) -> None:
    size = 16 << 20
    image = tmp_path / "disk.img"
    image.write_bytes(os.urandom(size))
    write_testmap(tmp_path / "bad.map", size, [])
    (tmp_path / "sim").mkdir()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with (
        simulated_disk(image, tmp_path / "sim", tmp_path / "bad.map", rate="4Mi") as dev,
        live_mount(dev, tmp_path / "out", tmp_path / "map", mnt, "-q", "-R"),
    ):
        # -R: the background pass starts at the end, so the start is read on demand
        fd = os.open(mnt / "image", os.O_RDONLY)
        try:
            for i in range(32):
                assert os.pread(fd, 65536, i * 65536) == image.read_bytes()[i * 65536 :][:65536]
        finally:
            os.close(fd)
        st = status(mnt)
        assert st["ondemand"]["readahead_requests"] > 0
        assert st["ondemand"]["reads"] < 32, "read-ahead should spare most on-demand waits"


def test_hanging_source_gives_eio_and_stops(tmp_path: Path) -> None:
    """A source whose reads hang: readers get EIO by their deadline; SIGTERM still unmounts
    within seconds with the map saved. (The process itself can only end once the hung read
    returns: the kernel does not abandon a read the FUSE server has received, and a real disk
    stuck in a SCSI timeout behaves the same.)"""
    import errno
    import time

    size = 8 << 20
    image = tmp_path / "disk.img"
    image.write_bytes(os.urandom(size))
    write_testmap(tmp_path / "bad.map", size, [])
    (tmp_path / "sim").mkdir()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with (
        simulate_process(
            image, tmp_path / "sim", tmp_path / "bad.map", rate="16Mi", hang="4Mi:64Ki"
        ) as sim,
        live_mount(
            sim.disk,
            tmp_path / "out",
            tmp_path / "map",
            mnt,
            "-q",
            "--read-timeout=1",
            "--schedule=ddrescue-1.27",  # cluster by cluster: the pass stops at the hung read
        ) as m,
    ):
        wait_for(lambda: status(mnt)["current_pos"] >= 4 << 20, 20, "pass did not reach 4 MiB")
        fd = os.open(mnt / "image", os.O_RDONLY)
        try:
            start = time.monotonic()
            with pytest.raises(OSError) as info:
                os.pread(fd, 4096, 6 << 20)  # the engine is stuck in the hung read
            assert info.value.errno == errno.EIO
            assert time.monotonic() - start < 3
        finally:
            os.close(fd)
        start = time.monotonic()
        m.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "map saved" in m.stderr() and not is_mounted(mnt), 20, "no clean stop")
        assert time.monotonic() - start < 15
        lines = map_lines(tmp_path / "map")
        assert lines[0].split()[1] == "?"
        assert lines[1] == "0x00000000  0x00400000  +"
        sim.stop()  # the hung read returns (with an error) and ddfs can end
        assert m.wait(30) == -signal.SIGTERM, m.stderr()
    assert not is_mounted(mnt)


def test_loop_devices_are_writable_with_an_overlay(tmp_path: Path) -> None:
    """``--loop --overlay``: a write through the partition's loop device goes to the overlay;
    OUTFILE keeps the rescued bytes."""
    disk = tmp_path / "disk.img"
    make_disk(disk, LAYOUTS["mbr with logicals"])
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    out, ov = tmp_path / "out", tmp_path / "disk.ov"
    argv = ["-q", "--loop", "--overlay", str(ov)]
    with live_mount(disk, out, tmp_path / "map", mnt, *argv) as m:
        wait_for(lambda: m.stderr().count("attached as") >= 5, 30, "loop devices")
        wait_for(lambda: status(mnt)["phase"] == "finished", 30, "rescue did not finish")
        names = dict(
            line.split(" attached as ")
            for line in m.stderr().replace("ddfs: ", "").splitlines()
            if "attached as" in line
        )
        with open(names["p5"], "r+b") as dev:
            dev.write(b"repaired" * 64)
            dev.flush()
            os.fsync(dev.fileno())
        with open(mnt / "p5", "rb") as fh:
            assert fh.read(512) == b"repaired" * 64
        m.proc.send_signal(signal.SIGTERM)  # detaches the devices, commits, unmounts
        assert m.wait(30) == -signal.SIGTERM, m.stderr()
    assert out.read_bytes()[18 << 20 : (18 << 20) + 512] == disk.read_bytes()[18 << 20 :][:512]
    listing = run_ddfs("overlay", str(ov), "--list").stdout
    assert "01200000" in listing.upper(), listing
