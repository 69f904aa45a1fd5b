"""``ddfs simulate`` through real FUSE mounts: data, EIO, weak areas, timing, stats, loop, ddrescue.

Each test starts its own ``ddfs simulate`` subprocess through :mod:`tests.simdisk` (small
images, rate 0 unless timing is the point), so every test cleans up its mount, loop device
and process even when it fails.
"""

from __future__ import annotations

import errno
import mmap
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.simdisk import (
    ddfs_argv,
    is_mounted,
    loop_device,
    read_stats,
    simulate_process,
    simulated_disk,
)

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.timeout(60),
]

KiB = 1024
MiB = 1024 * KiB
SIZE = 4 * MiB
# The test map: (pos, size, status); '-', '*', '/' are bad, '?' and '+' good.
LAYOUT = [
    (0, MiB, "+"),
    (MiB, 512, "-"),
    (MiB + 512, MiB - 512 + 4096, "+"),
    (2 * MiB + 4096, 8192, "*"),
    (2 * MiB + 12288, 64 * KiB, "?"),
    (2 * MiB + 12288 + 64 * KiB, 3 * MiB - (2 * MiB + 12288 + 64 * KiB), "+"),
    (3 * MiB, 1536, "/"),
    (3 * MiB + 1536, MiB - 1536, "+"),
]
BAD = [(pos, size) for pos, size, st in LAYOUT if st in "-*/"]


def mapfile_text(blocks: list[tuple[int, int, str]]) -> str:
    lines = ["# test map", "0x00000000     +               1", "#      pos        size  status"]
    lines += [f"0x{p:08X}  0x{s:08X}  {st}" for p, s, st in blocks]
    return "\n".join(lines) + "\n"


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "image"
    path.write_bytes(random.Random(7).randbytes(SIZE))
    return path


@pytest.fixture
def testmap(tmp_path: Path) -> Path:
    path = tmp_path / "test.map"
    path.write_text(mapfile_text(LAYOUT))
    return path


@pytest.fixture
def mnt(tmp_path: Path) -> Path:
    path = tmp_path / "mnt"
    path.mkdir()
    return path


@contextmanager
def opened(path: str, flags: int = os.O_RDONLY) -> Iterator[int]:
    fd = os.open(path, flags)
    try:
        yield fd
    finally:
        os.close(fd)


def expect_eio(fd: int, size: int, pos: int) -> None:
    with pytest.raises(OSError) as info:
        os.pread(fd, size, pos)
    assert info.value.errno == errno.EIO


def final_bad_areas(mapfile: Path) -> list[tuple[int, int]]:
    """The non-finished blocks of a ddrescue mapfile, as (pos, size)."""
    out = []
    lines = [ln for ln in mapfile.read_text().splitlines() if ln and not ln.startswith("#")]
    for line in lines[1:]:
        pos, size, status = line.split()[:3]
        if status != "+":
            out.append((int(pos, 0), int(size, 0)))
    return out


# ------------------------------------------------------------------ data and errors
def test_good_data_byte_exact_and_request_sizes(image: Path, testmap: Path, mnt: Path) -> None:
    data = image.read_bytes()
    buf = mmap.mmap(-1, 4 * MiB)  # page-aligned
    with simulated_disk(image, mnt, testmap) as disk, opened(disk) as fd:
        assert os.fstat(fd).st_size == SIZE
        for pos in range(MiB + 512, 2 * MiB, 64 * KiB):
            n = min(64 * KiB, 2 * MiB - pos)
            assert os.pread(fd, n, pos) == data[pos : pos + n]
        assert os.pread(fd, 64 * KiB, 2 * MiB + 12288) == data[2 * MiB + 12288 :][: 64 * KiB]
        sizes = read_stats(disk)["read_sizes"]
        # direct_io: a read of <= 1 MiB - 4 KiB is one request of the reader's size
        assert sizes == {"65536": 16, "65024": 1}
        assert os.preadv(fd, [memoryview(buf)[:MiB]], 0) == MiB  # aligned buffer: 1 request
        assert buf[:MiB] == data[:MiB]
        assert read_stats(disk)["read_sizes"]["1048576"] == 1
        # a 4 MiB read from after the last bad block: short at EOF
        tail = 3 * MiB + 1536
        assert os.pread(fd, 4 * MiB, tail) == data[tail:]
        stats = read_stats(disk)
    # a big read is split at 1 MiB of the reader's pages: no request is bigger
    assert max(int(k) for k in stats["read_sizes"]) == MiB
    assert stats["errors"] == 0
    assert stats["bytes"] == 17 * 64 * KiB - 512 + MiB + SIZE - tail


def test_bad_sectors_eio_at_block_edges(image: Path, testmap: Path, mnt: Path) -> None:
    data = image.read_bytes()
    with simulated_disk(image, mnt, testmap) as disk, opened(disk) as fd:
        for pos, size in BAD:
            expect_eio(fd, 512, pos)
            expect_eio(fd, 512, pos + size - 512)
            expect_eio(fd, 64 * KiB, pos - 32 * KiB)
            expect_eio(fd, 513, pos - 512)  # one byte into the bad block
            assert os.pread(fd, 512, pos - 512) == data[pos - 512 : pos]
            assert os.pread(fd, 512, pos + size) == data[pos + size : pos + size + 512]
        stats = read_stats(disk)
    assert stats["errors"] == 4 * len(BAD)
    assert stats["reads"] == 6 * len(BAD)
    assert stats["bytes"] == 2 * 512 * len(BAD)
    assert stats["bad_bytes"] == sum(s for _, s in BAD)


def test_weak_area_fails_tries_times(image: Path, mnt: Path) -> None:
    data = image.read_bytes()
    with simulated_disk(image, mnt, weak=["1Mi:4Ki:3", "0x300000:1s:1"]) as disk:
        with opened(disk) as fd:
            for _ in range(3):
                expect_eio(fd, 512, MiB + 1024)
            assert os.pread(fd, 8192, MiB) == data[MiB : MiB + 8192]
            expect_eio(fd, 4096, 3 * MiB - 2048)
            assert os.pread(fd, 4096, 3 * MiB - 2048) == data[3 * MiB - 2048 : 3 * MiB + 2048]
        stats = read_stats(disk)
    assert stats["errors"] == 4
    assert [w["reads"] for w in stats["weak"]] == [4, 2]


def test_eof_short_and_empty_reads(image: Path, mnt: Path) -> None:
    data = image.read_bytes()
    with simulated_disk(image, mnt) as disk, opened(disk) as fd:
        assert os.pread(fd, 4096, SIZE - 100) == data[-100:]
        assert os.pread(fd, 4096, SIZE) == b""
        assert os.pread(fd, 4096, SIZE + MiB) == b""
        with open(disk, "rb") as fh:
            assert fh.read() == data


def test_writes_are_refused(image: Path, mnt: Path) -> None:
    before = image.read_bytes()
    with simulated_disk(image, mnt) as disk:
        for flags in (os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC):
            with pytest.raises(OSError) as info:
                os.open(disk, flags)
            assert info.value.errno == errno.EROFS
        with pytest.raises(OSError) as info:
            os.open(mnt / "new", os.O_WRONLY | os.O_CREAT, 0o644)
        assert info.value.errno == errno.EROFS
        with pytest.raises(OSError) as info:
            os.chmod(disk, 0o644)
        assert info.value.errno == errno.EROFS
        assert sorted(os.listdir(mnt)) == ["disk", "stats.json"]
    assert image.read_bytes() == before


def test_stats_json_is_fresh(image: Path, mnt: Path) -> None:
    with simulated_disk(image, mnt, rate="0") as disk, opened(disk) as fd:
        s0 = read_stats(disk)
        assert (s0["reads"], s0["bytes"], s0["size"]) == (0, 0, SIZE)
        os.pread(fd, 4096, 0)
        os.pread(fd, 4096, 8192)  # not where the last read ended: a seek
        s1 = read_stats(disk)
        assert (s1["reads"], s1["bytes"], s1["seeks"], s1["errors"]) == (2, 8192, 1, 0)
        stats_path = Path(disk).with_name("stats.json")
        assert stats_path.stat().st_size == len(stats_path.read_bytes())


# ------------------------------------------------------------------ timing
def test_timing_rate_seek_error_and_one_spindle(image: Path, testmap: Path, mnt: Path) -> None:
    opts = {"rate": "8Mi", "seek_ms": 100, "error_ms": 200}
    half = 512 * KiB  # one FUSE request whatever the alignment of the reader's buffer
    with simulated_disk(image, mnt, testmap, **opts) as disk, opened(disk) as fd:
        t = time.monotonic()
        os.pread(fd, half, 0)  # sequential from 0: 1/16 s of transfer
        assert 0.06 <= time.monotonic() - t < 0.4
        t = time.monotonic()
        os.pread(fd, 512, 2 * MiB)  # seek
        assert 0.1 <= time.monotonic() - t < 0.4
        t = time.monotonic()
        expect_eio(fd, 512, MiB)  # seek + error
        assert 0.3 <= time.monotonic() - t < 0.7
        # two readers at once share one spindle: 2 x (seek + 1/16 s of transfer)
        # (neither follows the last read, whichever goes first: each seeks)
        places = (0, 3 * MiB + 4096)
        threads = [threading.Thread(target=os.pread, args=(fd, half, p)) for p in places]
        t = time.monotonic()
        for th in threads:
            th.start()
        for th in threads:
            th.join(10)
        assert 0.32 <= time.monotonic() - t < 1.2
        stats = read_stats(disk)
    assert (stats["reads"], stats["seeks"], stats["errors"]) == (5, 4, 1)
    busy = 3 / 16 + 4 * 0.1 + 0.2 + 512 / (8 * MiB)
    assert stats["busy_seconds"] == pytest.approx(busy, abs=1e-6)


# ------------------------------------------------------------------ block device, ddrescue
def test_loop_device(image: Path, testmap: Path, mnt: Path) -> None:
    data = image.read_bytes()
    buf = mmap.mmap(-1, 64 * KiB)  # page-aligned, for O_DIRECT
    with (
        simulated_disk(image, mnt, testmap) as disk,
        loop_device(disk) as dev,
        opened(dev, os.O_RDONLY | os.O_DIRECT) as fd,
    ):
        assert os.lseek(fd, 0, os.SEEK_END) == SIZE

        def read(size: int, pos: int) -> bytes:
            n = os.preadv(fd, [memoryview(buf)[:size]], pos)
            return bytes(buf[:n])

        assert read(64 * KiB, 0) == data[: 64 * KiB]
        assert read(64 * KiB, 3 * MiB + 4096) == data[3 * MiB + 4096 :][: 64 * KiB]
        for pos, size in BAD:
            with pytest.raises(OSError) as info:
                read(512, pos + size - 512)
            assert info.value.errno == errno.EIO
            assert read(512, pos - 512) == data[pos - 512 : pos]
            assert read(512, pos + size) == data[pos + size : pos + size + 512]
        with opened(dev, os.O_WRONLY) as wfd, pytest.raises(OSError) as info:
            os.pwrite(wfd, bytes(512), 0)  # losetup -r: a read-only block device
        assert info.value.errno == errno.EPERM
    assert not is_mounted(mnt)


def test_ddrescue_through_the_disk(image: Path, testmap: Path, mnt: Path, tmp_path: Path) -> None:
    out, mapfile, log = tmp_path / "out", tmp_path / "out.map", tmp_path / "reads.log"
    with simulated_disk(image, mnt, testmap) as disk:
        argv = ["ddrescue", "-b", "512", f"--log-reads={log}", disk, str(out), str(mapfile)]
        run = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        stats = read_stats(disk)
    assert final_bad_areas(mapfile) == BAD
    data, rescued = image.read_bytes(), out.read_bytes()
    good = 0
    for pos, size in [*BAD, (SIZE, 0)]:
        assert rescued[good:pos] == data[good:pos]
        good = pos + size
    # every read ddrescue made arrived as one FUSE read of the same size
    logged = [ln.split() for ln in log.read_text().splitlines() if ln[:2] == "0x"]
    assert Counter(ln[1] for ln in logged) == Counter(stats["read_sizes"])
    assert stats["reads"] == len(logged)
    assert stats["errors"] == sum(1 for ln in logged if ln[3] != "0")
    assert max(int(k) for k in stats["read_sizes"]) == 64 * KiB


# ------------------------------------------------------------------ hangs and lifecycle
def test_hang_area_blocks_until_shutdown(image: Path, mnt: Path) -> None:
    data = image.read_bytes()
    result: list[object] = []

    def reader(fd: int) -> None:
        try:
            result.append(os.pread(fd, 4096, MiB))
        except OSError as exc:
            result.append(exc)

    with simulate_process(image, mnt, hang=["1Mi:1Ki"]) as sim:
        fd = os.open(sim.disk, os.O_RDONLY)
        try:
            th = threading.Thread(target=reader, args=(fd,), daemon=True)
            th.start()
            deadline = time.monotonic() + 10
            while read_stats(sim.disk)["hung_now"] != 1:
                assert time.monotonic() < deadline, "the read did not reach the hang area"
                time.sleep(0.01)
            assert os.pread(fd, 4096, 0) == data[:4096]  # the rest of the disk still reads
            assert result == []
            sim.proc.send_signal(signal.SIGTERM)
            assert sim.proc.wait(10) == 0
            th.join(10)
            assert not th.is_alive()
        finally:
            os.close(fd)
        assert not is_mounted(mnt)
    assert isinstance(result[0], OSError)
    assert result[0].errno in (errno.ECONNABORTED, errno.ENOTCONN, errno.EIO, errno.EINTR)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_unmounts_and_exits_0(image: Path, mnt: Path, signum: int) -> None:
    with simulate_process(image, mnt) as sim:
        assert os.path.ismount(mnt)
        assert "ddfs simulate: serving" in sim.stderr()
        sim.proc.send_signal(signum)
        assert sim.proc.wait(10) == 0
        assert not is_mounted(mnt)
        assert sim.stderr().count("\n") == 1, sim.stderr()


def test_external_unmount_exits_0(image: Path, mnt: Path) -> None:
    with simulate_process(image, mnt) as sim:
        subprocess.run(["fusermount3", "-u", str(mnt)], check=True, timeout=10)
        assert sim.proc.wait(10) == 0
        line = f"ddfs simulate: serving {image} at {os.path.join(os.path.realpath(mnt), 'disk')}"
        assert sim.stderr() == line + "\n"


def test_background_mode(image: Path, mnt: Path) -> None:
    run = subprocess.run(
        ddfs_argv("simulate", str(image), str(mnt), "--background"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    pid = log = None
    try:
        assert run.returncode == 0, run.stderr
        assert run.stderr.startswith("ddfs simulate: serving ")
        line = f"ddfs simulate: serving {image} at {mnt / 'disk'} (pid "
        assert run.stderr.startswith(line) and run.stderr.count("\n") == 1
        pid = int(run.stderr.split("(pid ")[1].split(",")[0])
        log = run.stderr.split(", log ")[1].rstrip(")\n")
        assert is_mounted(mnt)
        assert os.path.getsize(mnt / "disk") == SIZE
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True, timeout=10)
        if pid is not None:  # the daemon's pid, as it reported it
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if log is not None:
            os.unlink(log)  # the daemon's messages after startup
    assert not is_mounted(mnt)
    assert pid is not None and not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--weak", "1:2"], 1, "Bad argument '1:2' in option '--weak'"),
        (["--hang", "0:0"], 1, "Value out of limits"),
        (["--rate", "fast"], 1, "option '--rate'"),
        (["--seek-ms", "-1"], 1, "option '--seek-ms'"),
        (["--bad", "/nonexistent.map"], 1, "Can't open mapfile"),
        (["--bad", "BADMAP"], 2, "Error in mapfile, line 1"),
    ],
)
def test_bad_arguments(
    image: Path, mnt: Path, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    badmap = tmp_path / "bad.map"
    badmap.write_text("garbage\n")
    args = [str(badmap) if a == "BADMAP" else a for a in args]
    run = subprocess.run(
        ddfs_argv("simulate", str(image), str(mnt), *args),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == code, run.stderr
    assert message in run.stderr
    assert not is_mounted(mnt)
