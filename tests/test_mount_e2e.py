"""End to end: e2fsck and a loop mount of a partition of a disk that is still being rescued."""

from __future__ import annotations

import filecmp
import os
import random
import subprocess
from pathlib import Path

import pytest

from tests.mountproc import live_mount, status, wait_for
from tests.simdisk import simulated_disk
from tests.test_mount import write_testmap

pytestmark = pytest.mark.fuse
MiB = 1 << 20
SIZE = 64 * MiB
P1_START, P1_SIZE = 1 * MiB, 40 * MiB


def build_disk(tmp_path: Path) -> tuple[Path, Path]:
    files = tmp_path / "files"
    rng = random.Random(11)
    for d in range(4):
        sub = files / f"dir{d}" / "deeper"
        sub.mkdir(parents=True)
        for i in range(12):
            (sub.parent / f"f{i}.bin").write_bytes(rng.randbytes(rng.randrange(1, 300_000)))
        (sub / "note.txt").write_text(f"directory {d}\n")
    image = tmp_path / "disk.img"
    with open(image, "wb") as fh:
        fh.truncate(SIZE)
    subprocess.run(
        ["sfdisk", "-q", str(image)], input="label: gpt\n,40M,L\n,,L\n", text=True, check=True
    )
    subprocess.run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-d",
            str(files),
            "-E",
            f"offset={P1_START}",
            str(image),
            f"{P1_SIZE // 1024}k",
        ],
        check=True,
    )
    return image, files


def fsck_verdict(path: Path) -> tuple[int, str]:
    res = subprocess.run(["e2fsck", "-fn", str(path)], capture_output=True, text=True)
    return res.returncode, res.stdout.splitlines()[-1].split(":", 1)[1]


def test_fsck_and_loop_mount_while_rescuing(tmp_path: Path) -> None:
    image, files = build_disk(tmp_path)
    p1 = tmp_path / "p1.orig"
    p1.write_bytes(image.read_bytes()[P1_START : P1_START + P1_SIZE])
    expected = fsck_verdict(p1)
    # bad sectors outside the filesystem: in p2
    bad = [(48 * MiB, 0x10000), (50 * MiB + 512, 0x2000), (60 * MiB, 512)]
    write_testmap(tmp_path / "bad.map", SIZE, bad)
    (tmp_path / "sim").mkdir()
    mnt, fsmnt = tmp_path / "mnt", tmp_path / "fs"
    mnt.mkdir()
    fsmnt.mkdir()
    with (
        simulated_disk(
            image, tmp_path / "sim", tmp_path / "bad.map", rate="4Mi", seek_ms="1"
        ) as dev,
        live_mount(dev, tmp_path / "out", tmp_path / "map", mnt, "-q"),
    ):
        wait_for(lambda: (mnt / "p1").exists(), 30, "partition p1 did not appear")
        assert (mnt / "p1").stat().st_size == P1_SIZE
        assert fsck_verdict(mnt / "p1") == expected
        during = status(mnt)
        assert during["phase"] == "copying"
        assert during["bytes"]["finished"] < SIZE // 2, "the rescue should still be running"
        subprocess.run(["mount", "-o", "ro,loop", str(mnt / "p1"), str(fsmnt)], check=True)
        try:
            cmp = filecmp.dircmp(files, fsmnt, ignore=["lost+found"])
            assert not cmp.left_only and not cmp.right_only
            for root, _dirs, names in os.walk(files):
                for name in names:
                    rel = Path(root, name).relative_to(files)
                    assert (fsmnt / rel).read_bytes() == (files / rel).read_bytes(), rel
        finally:
            subprocess.run(["umount", str(fsmnt)], check=True)
        assert status(mnt)["ondemand"]["reads"] > 0
