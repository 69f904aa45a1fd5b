"""Degraded disks through the engine: primaries made unreadable on the simulated disk (bad
sectors of ``ddfs simulate``); the planner, reading through the rescue engine, finds the
backups and still plans the whole tree."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from engine.metadata.volume import Plan
from engine.ondemand.metadata_first import metadata_first
from engine.options import RescueOptions
from engine.rescue.builder import prepare
from tests.fsimages import make_disk, place, populate_tree
from tests.simdisk import simulated_disk
from tests.test_metadata_ntfs import mkntfs, mounted_rw, populate
from tests.test_mount import write_testmap

pytestmark = pytest.mark.fuse
MiB = 1 << 20
SIZE = 160 * MiB


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[int, int]]]:
    """A GPT disk: p1 NTFS and p2 FAT32, both full of files."""
    work = tmp_path_factory.mktemp("degraded")
    path = work / "disk.img"
    parts = make_disk(path, "label: gpt\n,64M,L\n,80M,L\n", SIZE)
    ntfs = work / "ntfs.img"
    mkntfs(ntfs, parts[0][1])
    mounted_rw(ntfs, work / "mnt", populate)
    fat = work / "fat.img"
    subprocess.run(
        ["mkfs.vfat", "-C", "-F", "32", "-s", "1", str(fat), str(parts[1][1] // 1024)],
        check=True,
        capture_output=True,
    )
    populate_tree(work / "tree", nfiles=200)
    subprocess.run(
        ["mcopy", "-s", "-i", str(fat), *map(str, (work / "tree").iterdir()), "::"], check=True
    )
    place(path, ntfs, parts[0][0])
    place(path, fat, parts[1][0])
    return path, parts


def plan_through_engine(tmp_path: Path, image: Path, bad: list[tuple[int, int]]) -> Plan:
    write_testmap(tmp_path / "bad.map", SIZE, bad)
    (tmp_path / "sim").mkdir(exist_ok=True)
    with simulated_disk(image, tmp_path / "sim", tmp_path / "bad.map") as dev:
        r, _ = prepare(
            dev, str(tmp_path / f"out{len(bad)}"), str(tmp_path / f"map{len(bad)}"), RescueOptions()
        )
        try:
            plan = metadata_first(r)
        finally:
            r.close()
            r.source.close()
            r.output.close()
    assert plan is not None
    return plan


def mft_record_zero(image: Path, start: int) -> int:
    with open(image, "rb") as fh:
        fh.seek(start)
        boot = fh.read(512)
    bps, spc = struct.unpack_from("<HB", boot, 0x0B)
    lcn = struct.unpack_from("<Q", boot, 0x30)[0]
    return start + lcn * bps * spc


@pytest.mark.parametrize(
    "lost", ["GPT header", "NTFS boot sector", "MFT record 0", "FAT32 boot sector"]
)
def test_backups_found_through_the_engine(
    tmp_path: Path, disk: tuple[Path, list[tuple[int, int]]], lost: str
) -> None:
    image, parts = disk
    (tmp_path / "h").mkdir()
    healthy = plan_through_engine(tmp_path / "h", image, [])
    where = {
        "GPT header": 512,
        "NTFS boot sector": parts[0][0],
        "MFT record 0": mft_record_zero(image, parts[0][0]),
        "FAT32 boot sector": parts[1][0],
    }[lost]
    (tmp_path / "d").mkdir()
    damaged = plan_through_engine(tmp_path / "d", image, [(where, 512)])
    assert [name for _, _, name in damaged.filesystems] == ["ntfs", "fat"]
    for key in ("ntfs:directories", "ntfs:files", "fat:directories", "fat:files"):
        assert damaged.counts.get(key) == healthy.counts.get(key), (key, damaged.notes)
    if lost != "GPT header":
        assert damaged.notes, "the fallback is noted"
