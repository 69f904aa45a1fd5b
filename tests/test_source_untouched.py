"""The source is never written, by any kind of run.

Each run goes under ``strace -f -e trace=open,openat,openat2``: every open of the source path
(by any process or thread) must be read-only, with none of ``O_WRONLY``, ``O_RDWR``,
``O_CREAT``, ``O_TRUNC`` or ``O_APPEND``. A checksum (and size, mtime and ctime) of the source
is taken before and after. The source is a writable loop device where it can be, so that only
ddfs's own open flags protect it. Kinds of run: ``ddfs rescue`` (with a resume), fill mode
``-F``, generate mode ``-G`` (whose OUTFILE is read and must not change either), ``ddfs mount``
with reads through the mount, and ``ddfs log`` (whose "source" is the mapfile).
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import ddfs_cmd
from tests.faults import Fingerprint, fingerprint, sha256
from tests.mountproc import status, wait_for
from tests.simdisk import SimulateProcess, is_mounted, loop_device

SIZE = 4 << 20
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")


def strace_argv(log: Path, argv: list[str]) -> list[str]:
    return ["strace", "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", str(log), *argv]


def opens_of(log: Path, path: str) -> list[str]:
    """The open calls in a strace log that name ``path``."""
    quoted = f'"{path}"'
    return [ln for ln in log.read_text().splitlines() if quoted in ln and "open" in ln]


def assert_read_only(log: Path, path: str, expect_open: bool = True) -> int:
    opens = opens_of(log, path)
    if expect_open:
        assert opens, f"{path} was never opened (is strace working?)"
    for ln in opens:
        flags = re.search(r"O_[A-Z_|]+", ln)
        assert flags and "O_RDONLY" in flags.group(0), ln
        assert not any(f in flags.group(0) for f in WRITE_FLAGS), f"source opened for write: {ln}"
    return len(opens)


def traced(tmp_path: Path, name: str, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    log = tmp_path / f"{name}.strace"
    res = subprocess.run(
        strace_argv(log, ddfs_cmd(*args)),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    return res, log


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "disk.img"
    data = bytearray(random.Random(8).randbytes(SIZE))
    data[0x100000:0x180000] = bytes(0x80000)  # a zero area, for -G
    path.write_bytes(bytes(data))
    return path


def unchanged(path: str | Path, before: Fingerprint) -> None:
    after = fingerprint(path)
    assert after.sha256 == before.sha256, f"{path}: content changed"
    assert after == before, f"{path}: metadata changed {before} -> {after}"


def test_rescue_on_a_device_never_writes_it(tmp_path: Path, image: Path) -> None:
    before = fingerprint(image)
    with loop_device(image, read_only=False) as dev:
        dev_sum = sha256(dev)
        out, mp = tmp_path / "out", tmp_path / "map"
        res, log = traced(tmp_path, "rescue", "rescue", "-q", "-s", "2Mi", dev, str(out), str(mp))
        assert res.returncode == 0, res.stderr
        n = assert_read_only(log, dev)
        res, log = traced(tmp_path, "resume", "rescue", "-q", "-d", dev, str(out), str(mp))
        assert res.returncode == 0, res.stderr
        n += assert_read_only(log, dev)
        assert sha256(dev) == dev_sum
    unchanged(image, before)
    assert out.read_bytes() == image.read_bytes()
    print(f"\nrescue + resume (-d): {n} opens of the source, all O_RDONLY")


def test_fill_and_generate_never_write_the_source(tmp_path: Path, image: Path) -> None:
    before = fingerprint(image)
    out, mp = tmp_path / "out", tmp_path / "map"
    res = subprocess.run(ddfs_cmd("rescue", "-q", str(image), str(out), str(mp)), check=False)
    assert res.returncode == 0
    # -F: fill the finished blocks of the output with the source's first cluster
    res, log = traced(tmp_path, "fill", "rescue", "-q", "-F", "+", str(image), str(out), str(mp))
    assert res.returncode == 0, res.stderr
    n_fill = assert_read_only(log, str(image))
    unchanged(image, before)
    assert out.read_bytes() != image.read_bytes(), "fill mode did not write the output"
    # -G: generate a map from the output; neither the source nor the output is written
    out.write_bytes(image.read_bytes())
    out_before = fingerprint(out)
    gmap = tmp_path / "gmap"
    res, log = traced(tmp_path, "generate", "rescue", "-q", "-G", str(image), str(out), str(gmap))
    assert res.returncode == 0, res.stderr
    assert_read_only(log, str(image), expect_open=False)
    assert_read_only(log, str(out), expect_open=False)
    unchanged(image, before)
    unchanged(out, out_before)
    assert gmap.exists()
    print(
        f"\nfill: {n_fill} opens of the source, all O_RDONLY; generate: source and output unchanged"
    )


def test_log_never_writes_the_mapfile(tmp_path: Path, image: Path) -> None:
    out, mp = tmp_path / "out", tmp_path / "map"
    assert subprocess.run(ddfs_cmd("rescue", "-q", str(image), str(out), str(mp))).returncode == 0
    before = fingerprint(mp)
    for args in (["-t"], ["-l+"], ["-D"], ["-A"], ["-b4096", "-l+"]):
        res, log = traced(tmp_path, "log", "log", *args, str(mp))
        assert res.returncode in (0, 1), (args, res.stderr)
        assert "Traceback" not in res.stderr
        assert_read_only(log, str(mp))
        unchanged(mp, before)


@pytest.mark.fuse
def test_mount_with_reads_never_writes_the_source(tmp_path: Path, image: Path) -> None:
    before = fingerprint(image)
    data = image.read_bytes()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with loop_device(image, read_only=False) as dev:
        log = tmp_path / "mount.strace"
        argv = strace_argv(
            log,
            ddfs_cmd("mount", "-q", dev, str(tmp_path / "out"), str(tmp_path / "map"), str(mnt)),
        )
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            mount = SimulateProcess(proc, err, str(mnt))
            try:
                mount.wait_mounted()
                rng = random.Random(1)
                with open(mnt / "image", "rb") as fh:
                    for _ in range(50):
                        pos = rng.randrange(0, SIZE - 65536)
                        fh.seek(pos)
                        assert fh.read(65536) == data[pos : pos + 65536]
                wait_for(lambda: status(mnt)["phase"] == "finished", 60, "rescue did not finish")
                assert subprocess.run(["umount", str(mnt)]).returncode == 0
                assert mount.wait(30) == 0, mount.stderr()
            finally:
                mount.stop()
        assert not is_mounted(mnt)
        n = assert_read_only(log, dev)
        assert sha256(dev) == sha256(image)
    unchanged(image, before)
    assert (tmp_path / "out").read_bytes() == data
    os.unlink(log)
    print(f"\nmount: {n} opens of the source, all O_RDONLY")
