"""Repairs through ``ddfs mount --overlay`` with real tools, in subprocess mounts.

* e2fsck -fy repairs an ext4 filesystem damaged on purpose, while the rescue runs underneath;
  e2fsck -fn then says clean, also after a remount; the overlay holds the changes and applies
  to a copy; the source and OUTFILE never see them.
* testdisk finds a deleted partition and writes the table into the overlay.
* kill -9 of the mount during writes and fsyncs: the remounted overlay serves exactly what its
  map claims, which covers every write fsynced before the kill, and nothing else changed.
* ``ddfs overlay --list / --reset / --apply`` on the command line.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ddfs.live.overlay import SECTOR, Overlay, map_path
from engine.map.mapfile import parse_mapfile
from tests.conftest import run_ddfs
from tests.fsimages import make_disk, place
from tests.mountproc import live_mount, status, wait_for
from tests.simdisk import simulated_disk
from tests.test_mount import write_testmap

MiB = 1 << 20


def run(*argv: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)  # type: ignore[call-overload]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def claimed(overlay: Path) -> list[tuple[int, int]]:
    bmap = parse_mapfile(map_path(str(overlay))).bmap
    return [(s, e - s) for s, e, st in bmap.blocks_from(0) if st == "+"]


def rescued_copy(source: Path, mapfile: Path) -> bytes:
    """What OUTFILE must hold: the source where the map says finished, zeros elsewhere."""
    data = bytearray(source.read_bytes())
    for s, e, st in parse_mapfile(str(mapfile)).bmap.blocks_from(0):
        if st != "+":
            data[s:e] = bytes(e - s)
    return bytes(data)


def unmount(m, mnt: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("fusermount3", "-u", str(mnt)).returncode == 0
    assert m.wait(30) == 0, m.stderr()


# ------------------------------------------------------------------ e2fsck
P1_START, P1_SIZE, DISK = 1 * MiB, 24 * MiB, 32 * MiB


def damaged_ext4(tmp_path: Path) -> Path:
    """A 24 MiB ext4 with files, damaged on purpose: block bitmap zeroed, a directory block and
    an inode clobbered. e2fsck -fn must see errors."""
    files = tmp_path / "files"
    rng = random.Random(7)
    for d in range(3):
        (files / f"dir{d}").mkdir(parents=True)
        for i in range(20):
            (files / f"dir{d}" / f"f{i}").write_bytes(rng.randbytes(rng.randrange(100, 40000)))
    fs = tmp_path / "fs.img"
    with open(fs, "wb") as fh:
        fh.truncate(P1_SIZE)
    assert run("mkfs.ext4", "-q", "-F", "-b", "1024", "-d", str(files), str(fs)).returncode == 0
    head = run("dumpe2fs", str(fs)).stdout
    bitmap = int(head.split("Block bitmap at ")[1].split()[0])
    block = int(run("debugfs", "-R", "blocks /dir1", str(fs)).stdout.split()[0])
    imap = run("debugfs", "-R", "imap /dir2/f3", str(fs)).stdout
    iblock = int(imap.split("located at block ")[1].split(",")[0])
    ioff = int(imap.split("offset ")[1].split()[0], 16)
    bs = 1024
    with open(fs, "r+b") as fh:
        os.pwrite(fh.fileno(), bytes(bs), bitmap * bs)
        os.pwrite(fh.fileno(), b"\xff" * 16, block * bs + 24)
        os.pwrite(fh.fileno(), (9).to_bytes(2, "little"), iblock * bs + ioff + 0x1A)
    assert run("e2fsck", "-fn", str(fs)).returncode not in (0, 8), "the damage is not seen"
    return fs


@pytest.mark.fuse
def test_e2fsck_repairs_into_the_overlay_while_rescuing(tmp_path: Path) -> None:
    fs = damaged_ext4(tmp_path)
    disk = tmp_path / "disk.img"
    assert make_disk(disk, "label: dos\n2048,49152,83\n", DISK) == [(P1_START, P1_SIZE)]
    place(disk, fs, P1_START)
    source_sha = sha256(disk)
    bad = [(28 * MiB, 0x8000), (30 * MiB + 512, 0x1000)]  # outside the filesystem
    write_testmap(tmp_path / "bad.map", DISK, bad)
    sim, mnt, ov = tmp_path / "sim", tmp_path / "mnt", tmp_path / "repairs.ov"
    sim.mkdir()
    mnt.mkdir()
    out, mapfile = tmp_path / "out", tmp_path / "map"
    with simulated_disk(disk, sim, tmp_path / "bad.map", rate="4Mi") as dev:
        with live_mount(dev, out, mapfile, mnt, "-q", "--overlay", str(ov)) as m:
            wait_for(lambda: (mnt / "p1").exists(), 30, "p1 did not appear")
            fixed = run("e2fsck", "-fy", str(mnt / "p1"))
            assert fixed.returncode in (1, 2), fixed.stdout + fixed.stderr
            during = status(mnt)
            clean = run("e2fsck", "-fn", str(mnt / "p1"))
            assert clean.returncode == 0, clean.stdout
            listed = run_ddfs("overlay", str(ov), "--list")
            assert listed.returncode == 0 and "0x" in listed.stdout, listed.stderr
            unmount(m, mnt)
        assert during["phase"] != "finished", "the rescue should still be running"
        assert during["overlay"]["written_bytes"] > 0
        assert sha256(disk) == source_sha
        assert out.read_bytes() == rescued_copy(disk, mapfile)  # no repair leaked into OUTFILE
        ranges = claimed(ov)
        assert ranges and all(p >= P1_START and p + n <= P1_START + P1_SIZE for p, n in ranges)
        # the repairs persist; the rescue goes on underneath them to the end
        with live_mount(dev, out, mapfile, mnt, "-q", "--overlay", str(ov)) as m:
            wait_for(lambda: status(mnt)["phase"] == "finished", 60, "rescue did not finish")
            again = run("e2fsck", "-fn", str(mnt / "p1"))
            assert again.returncode == 0, again.stdout
            unmount(m, mnt)
    assert sha256(disk) == source_sha
    expected = bytearray(disk.read_bytes())
    for s, n in bad:
        expected[s : s + n] = bytes(n)
    assert sha256(out) == hashlib.sha256(expected).hexdigest()
    # applied to a copy of the rescued image, the repairs make a clean filesystem
    copy = tmp_path / "copy.img"
    copy.write_bytes(out.read_bytes())
    applied = run_ddfs("overlay", str(ov), "--apply", str(copy))
    assert applied.returncode == 0, applied.stderr
    part = tmp_path / "p1.img"
    part.write_bytes(copy.read_bytes()[P1_START : P1_START + P1_SIZE])
    assert run("e2fsck", "-fn", str(part)).returncode == 0
    assert sha256(out) == hashlib.sha256(expected).hexdigest()


# ------------------------------------------------------------------ testdisk
def linux_entries(listing: str) -> int:
    """The partitions ``testdisk /list`` shows (``1 * Linux ...``, ``2 P Linux ...``)."""
    return len(re.findall(r"^\s*\d+ [*PLE] Linux ", listing, re.MULTILINE))


@pytest.mark.fuse
def test_testdisk_writes_a_partition_table_into_the_overlay(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    parts = make_disk(disk, "label: dos\n2048,20480,83\n22528,,83\n", DISK)
    for start, size in parts:
        fs = tmp_path / "fs.img"
        with open(fs, "wb") as fh:
            fh.truncate(size)
        assert run("mkfs.ext4", "-q", "-F", str(fs)).returncode == 0
        place(disk, fs, start)
    assert run("sfdisk", "-q", "--delete", str(disk), "2").returncode == 0  # a lost partition
    source_sha = sha256(disk)
    mnt, ov = tmp_path / "mnt", tmp_path / "table.ov"
    mnt.mkdir()
    out, mapfile = tmp_path / "out", tmp_path / "map"

    def table(path: Path) -> list[tuple[int, int]]:
        res = run("sfdisk", "--json", str(path))
        assert res.returncode == 0, res.stderr
        found = json.loads(res.stdout)["partitiontable"]["partitions"]
        return [(p["start"] * 512, p["size"] * 512) for p in found]

    with live_mount(disk, out, mapfile, mnt, "-q", "--overlay", str(ov)) as m:
        wait_for(lambda: status(mnt)["phase"] == "finished", 30, "rescue did not finish")
        assert table(mnt / "image") == parts[:1]
        listed = run("testdisk", "/list", str(mnt / "image"), cwd=tmp_path)
        assert listed.returncode == 0 and linux_entries(listed.stdout) == 1, listed.stdout
        res = run(
            "testdisk",
            "/log",
            "/cmd",
            str(mnt / "image"),
            "partition_i386,analyze,noconfirm,write",
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
        )
        assert res.returncode == 0, res.stdout[-2000:]
        assert "write!" in (tmp_path / "testdisk.log").read_text()
        assert table(mnt / "image") == parts  # the re-read table has the partition back
        relisted = run("testdisk", "/list", str(mnt / "image"), cwd=tmp_path)
        assert linux_entries(relisted.stdout) == 2, relisted.stdout
        assert sorted(os.listdir(mnt)) == ["image", "mapfile", "p1", "status.json"]
        unmount(m, mnt)
    assert sha256(disk) == source_sha
    assert sha256(out) == source_sha  # OUTFILE is the rescued source, without the new table
    assert claimed(ov) and claimed(ov)[0][0] == 0
    # the partition files follow the table as served: the next mount shows p2
    with live_mount(disk, out, mapfile, mnt, "-q", "--overlay", str(ov)) as m:
        wait_for(lambda: (mnt / "p2").exists(), 30, "p2 did not appear")
        assert (mnt / "p2").stat().st_size == parts[1][1]
        unmount(m, mnt)
    assert run_ddfs("overlay", str(ov), "--reset").returncode == 0
    assert claimed(ov) == []
    assert sha256(disk) == source_sha and sha256(out) == source_sha


# ------------------------------------------------------------------ kill -9
WRITER = r"""
import hashlib, os, random, sys
image, log_path = sys.argv[1], sys.argv[2]
rng = random.Random(42)
log = open(log_path, "w", buffering=1)
fd = os.open(image, os.O_RDWR)
for i in range(1800):
    pos = i * 8192 + rng.randrange(0, 1000)
    size = rng.randrange(1, 7000)
    data = (hashlib.sha256(str(i).encode()).digest() * (size // 32 + 1))[:size]
    log.write(f"W {i} {pos} {size}\n")
    try:
        os.pwrite(fd, data, pos)
        if i % 3 == 2:
            os.fsync(fd)
            log.write(f"S {i}\n")
    except OSError as exc:
        log.write(f"E {i} {exc.errno}\n")
        sys.exit(0)
"""


def pattern(i: int, size: int) -> bytes:
    return (hashlib.sha256(str(i).encode()).digest() * (size // 32 + 1))[:size]


@pytest.mark.fuse
def test_kill_9_during_writes_then_remount(tmp_path: Path, random_file) -> None:
    source = random_file(16 * MiB, "disk.img", seed=9)
    original = source.read_bytes()
    mnt, ov = tmp_path / "mnt", tmp_path / "crash.ov"
    mnt.mkdir()
    out, mapfile, log = tmp_path / "out", tmp_path / "map", tmp_path / "writes.log"
    log.write_text("")
    with live_mount(source, out, mapfile, mnt, "-q", "--overlay", str(ov)) as m:
        wait_for(lambda: status(mnt)["phase"] == "finished", 30, "rescue did not finish")
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(mnt / "image"), str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: log.read_text().count("S ") >= 60, 30, "the writer made no progress")
            m.proc.kill()  # kill -9, by handle
            m.proc.wait(10)
            writer.wait(30)
        finally:
            if writer.poll() is None:
                writer.kill()
                writer.wait(10)
    lines = log.read_text().splitlines()
    writes = {int(f[1]): (int(f[2]), int(f[3])) for f in map(str.split, lines) if f[0] == "W"}
    synced = max(int(ln.split()[1]) for ln in lines if ln.startswith("S "))
    assert len(writes) > synced + 1 or any(ln.startswith("E") for ln in lines)

    def rounded(pos: int, size: int) -> tuple[int, int]:
        lo = pos // SECTOR * SECTOR
        return lo, -(-(pos + size) // SECTOR) * SECTOR - lo

    have = claimed(ov)
    covered = [(s, s + n) for s, n in have]

    def inside(pos: int, size: int) -> bool:
        return any(s <= pos and pos + size <= e for s, e in covered)

    def touches(pos: int, size: int) -> bool:
        return any(s < pos + size and pos < e for s, e in covered)

    durable = []
    for i, (pos, size) in sorted(writes.items()):
        lo, n = rounded(pos, size)
        if inside(lo, n):
            durable.append(i)
        else:
            assert not touches(lo, n), f"write {i} is half claimed"
            assert i > synced, f"write {i} was fsynced before the kill but is not claimed"
    # nothing is claimed that no write made
    claimed_bytes = sum(n for _s, n in have)
    assert claimed_bytes == sum(rounded(*writes[i])[1] for i in durable)
    assert sha256(out) == hashlib.sha256(original).hexdigest()
    assert source.read_bytes() == original
    expected = bytearray(original)
    for i in durable:
        pos, size = writes[i]
        expected[pos : pos + size] = pattern(i, size)
    with live_mount(source, out, mapfile, mnt, "-q", "--overlay", str(ov)) as m:
        served = (mnt / "image").read_bytes()
        unmount(m, mnt)
    assert served == expected
    assert source.read_bytes() == original
    assert sha256(out) == hashlib.sha256(original).hexdigest()


# ------------------------------------------------------------------ ddfs overlay
def test_overlay_command(tmp_path: Path) -> None:
    size = 1 * MiB
    src, out = tmp_path / "in", tmp_path / "out"
    src.write_bytes(b"s" * size)
    out.write_bytes(b"o" * size)
    path = tmp_path / "ov"
    ov = Overlay.open(str(path), size, output=str(out), source=str(src))
    ov.write(4096, b"A" * 1024)
    ov.write(65536, b"B" * 512)
    ov.commit()
    try:  # a mount holds the overlay: --reset and --apply refuse
        busy = run_ddfs("overlay", str(path), "--reset")
        assert busy.returncode == 1 and "in use" in busy.stderr
    finally:
        ov.close()
    listed = run_ddfs("overlay", str(path), "--list")
    assert listed.returncode == 0, listed.stderr
    assert [ln for ln in listed.stdout.splitlines() if not ln.startswith("#")] == [
        "0x00001000  0x00000400",
        "0x00010000  0x00000200",
    ]
    assert "2 range(s), 1536 bytes" in listed.stdout
    copy = tmp_path / "copy"
    copy.write_bytes(out.read_bytes())
    applied = run_ddfs("overlay", str(path), "--apply", str(copy))
    assert applied.returncode == 0, applied.stderr
    data = copy.read_bytes()
    assert data[4096:5120] == b"A" * 1024 and data[65536:66048] == b"B" * 512
    assert data[:4096] == b"o" * 4096 and len(data) == size
    refused = run_ddfs("overlay", str(path), "--apply", str(out))
    assert refused.returncode == 1 and "--to-output" in refused.stderr
    assert out.read_bytes() == b"o" * size
    refused = run_ddfs("overlay", str(path), "--apply", str(src), "--to-output")
    assert refused.returncode == 1 and "source" in refused.stderr
    assert src.read_bytes() == b"s" * size
    forced = run_ddfs("overlay", str(path), "--apply", str(out), "--to-output")
    assert forced.returncode == 0, forced.stderr
    assert out.read_bytes() == data
    for args in ((), ("--list", "--reset"), ("--list", "--to-output")):
        bad = run_ddfs("overlay", str(path), *args)
        assert bad.returncode == 1, args
    assert run_ddfs("overlay", str(tmp_path / "none"), "--list").returncode == 1
    reset = run_ddfs("overlay", str(path), "--reset")
    assert reset.returncode == 0, reset.stderr
    assert "0 range(s)" in run_ddfs("overlay", str(path), "--list").stdout
    assert os.stat(path).st_blocks == 0


@pytest.mark.fuse
def test_without_overlay_writes_get_erofs(tmp_path: Path, random_file) -> None:
    source = random_file(4 * MiB, "disk.img")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with live_mount(source, tmp_path / "out", tmp_path / "map", mnt, "-q") as m:
        with pytest.raises(OSError) as info:
            os.open(mnt / "image", os.O_RDWR)
        assert info.value.errno == errno.EROFS
        assert "overlay" not in status(mnt)
        unmount(m, mnt)
