"""The XFS planner (:mod:`engine.metadata.xfs`) against the tools: what ``xfs_repair -n`` and a
read-only kernel mount walked to every file read falls inside P0-P3 (recorded through the
read-logging FUSE view, by a read-only loop device without readahead), P0-P2 is a small share
of the volume, the counts are the tree's, a lost primary superblock leads to AG 1's copy, and
on the live mount of a slow simulated disk ``xfs_repair -n MOUNT/p1`` is done after a small
part of the disk was read."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from engine.map.mapfile import parse_mapfile
from engine.metadata import signatures
from engine.metadata.planner import plan_disk
from engine.metadata.volume import P2, P3, Plan, Volume
from engine.metadata.xfs import probe
from engine.ondemand.metadata_first import worth_planning
from tests.conftest import run_ddfs
from tests.fsimages import coverage, make_disk, place, populate_tree, read_logged
from tests.mountproc import live_mount, wait_for
from tests.simdisk import read_stats, simulated_disk
from tests.test_mount import write_testmap

pytestmark = pytest.mark.fuse
MiB = 1 << 20
FS_SIZE = 320 * MiB  # mkfs.xfs wants at least 300 MB


def make_xfs(path: Path, tree: Path, size: int = FS_SIZE) -> None:
    """An XFS filesystem in the file ``path``, ``tree`` copied in through a loop mount."""
    with open(path, "wb") as fh:
        fh.truncate(size)
    subprocess.run(["mkfs.xfs", "-q", "-f", str(path)], check=True)
    mnt = path.parent / f"{path.name}.mnt"
    mnt.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "xfs", "-o", "loop", str(path), str(mnt)], check=True)
    try:
        subprocess.run(["cp", "-r", *(str(p) for p in tree.iterdir()), str(mnt)], check=True)
    finally:
        subprocess.run(["umount", str(mnt)], check=True, timeout=60)


def plan_of(path: Path, bad: tuple[int, int] | None = None) -> Plan:
    data = path.read_bytes()

    def read(pos: int, n: int) -> bytes | None:
        if bad is not None and pos < bad[1] and bad[0] < pos + n:
            return None
        return data[pos : pos + n]

    return plan_disk(read, len(data))


def mount_and_walk(dev: str, mnt: Path) -> None:
    mnt.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "xfs", "-o", "ro,norecovery", dev, str(mnt)], check=True)
    try:
        for root, _dirs, files in os.walk(mnt):
            for name in files:
                os.lstat(os.path.join(root, name))
    finally:
        subprocess.run(["umount", str(mnt)], check=True, timeout=60)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("xfs")
    populate_tree(work / "tree", nfiles=3000)
    path = work / "xfs.img"
    make_xfs(path, work / "tree")
    return path, work / "tree"


def test_xfs_repair_and_mount_reads_inside_the_plan(
    image: tuple[Path, Path], tmp_path: Path
) -> None:
    path, _ = image
    plan = plan_of(path)
    assert plan.filesystems == [(0, FS_SIZE, "xfs")]
    for name, tool in (
        ("xfs_repair -n", ["xfs_repair", "-n", "{dev}"]),
        ("mount", lambda dev: mount_and_walk(dev, tmp_path / "mnt")),
    ):
        reads = read_logged(path, tool, tmp_path / name.split()[0], loop=True)
        assert sum(n for _, n in reads) > 256 * 1024, name
        share = coverage(reads, plan.ranges(P3))
        assert share >= 0.99, (name, share)
    assert plan.size_of(P2) < 0.02 * FS_SIZE


def test_counts_are_the_trees(image: tuple[Path, Path]) -> None:
    path, tree = image
    dirs = sum(1 for _ in os.walk(tree))
    files = sum(len(f) for _, _, f in os.walk(tree))
    counts = plan_of(path).counts
    assert counts["xfs:directories"] == dirs
    assert counts["xfs:files"] == files
    assert counts["xfs:inode_chunks"] >= files // 64


def test_lost_primary_superblock_uses_ag1s_copy(image: tuple[Path, Path]) -> None:
    path, _ = image
    good = plan_of(path)
    bad = plan_of(path, bad=(0, 512))
    assert bad.filesystems == [(0, FS_SIZE, "xfs")]
    assert any("AG 1's copy" in n for n in bad.notes), bad.notes
    assert bad.ranges(P2, 1) == good.ranges(P2, 1)
    assert bad.counts == good.counts


def test_probe_and_signature_agree_on_a_real_xfs(image: tuple[Path, Path]) -> None:
    path, _ = image
    data = path.read_bytes()
    vol = Volume(lambda p, n: data[p : p + n], 0, len(data), Plan(len(data)))
    assert probe(vol) and signatures.xfs(vol)
    blank = Volume(lambda p, n: bytes(n), 0, len(data), Plan(len(data)))
    assert not probe(blank) and not signatures.xfs(blank)


def test_xfs_repair_on_the_live_mount_of_a_slow_disk(tmp_path: Path) -> None:
    """The headline for XFS: ``xfs_repair -n`` on ``MOUNT/p1`` gives the verdict it gives on
    the healthy filesystem after under 5 % of the disk was read."""
    populate_tree(tmp_path / "tree", nfiles=300)
    fs = tmp_path / "p1.xfs"
    make_xfs(fs, tmp_path / "tree")
    size = FS_SIZE + 4 * MiB
    disk = tmp_path / "disk.img"
    ((start, psize),) = make_disk(disk, f"label: gpt\nstart=2048, size={FS_SIZE // 512}\n", size)
    place(disk, fs, start)
    expected = subprocess.run(["xfs_repair", "-n", "-f", str(fs)], capture_output=True)
    assert expected.returncode == 0, expected.stderr
    write_testmap(tmp_path / "bad.map", size, [(start + 200 * MiB, 4096)])
    (tmp_path / "sim").mkdir()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with (
        simulated_disk(disk, tmp_path / "sim", tmp_path / "bad.map", rate="2Mi", seek_ms="4")
        as dev,
        live_mount(dev, tmp_path / "out", tmp_path / "map", mnt, "-q"),
    ):
        begun = time.monotonic()
        wait_for(lambda: (mnt / "p1").exists(), 60, "p1 did not appear")
        res = subprocess.run(
            ["xfs_repair", "-n", "-f", str(mnt / "p1")], capture_output=True, timeout=300
        )
        took = time.monotonic() - begun
        read = read_stats(dev)["bytes"]
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    assert psize == FS_SIZE
    assert read < 0.05 * size, f"xfs_repair needed {read} bytes read in {took:.1f} s"


def test_a_bare_xfs_disk_is_worth_planning(image: tuple[Path, Path]) -> None:
    """Without a partition table there is no boot signature: the XFS magic (and LUKS, LVM2,
    btrfs) must still make ``ddfs rescue`` plan the disk; random data must not."""
    path, _ = image
    data = path.read_bytes()
    assert worth_planning(lambda p, n: data[p : p + n])
    noise = os.urandom(1 << 20)
    assert not worth_planning(lambda p, n: noise[p : p + n])


def test_lost_primary_superblock_on_a_failing_disk(
    image: tuple[Path, Path], tmp_path: Path
) -> None:
    """The primary superblock is a bad sector of the simulated disk: planning through the
    engine (``ddfs domain``) finds AG 1's copy and plans what the healthy disk gives."""
    path, _ = image
    write_testmap(tmp_path / "bad.map", FS_SIZE, [(0, 512)])
    (tmp_path / "sim").mkdir()
    with simulated_disk(path, tmp_path / "sim", tmp_path / "bad.map") as dev:
        res = run_ddfs(
            "domain", dev, str(tmp_path / "o"), str(tmp_path / "m"), str(tmp_path / "d")
        )
    healthy = run_ddfs(
        "domain", str(path), str(tmp_path / "o2"), str(tmp_path / "m2"), str(tmp_path / "d2")
    )
    assert res.returncode == 0, res.stderr
    assert healthy.returncode == 0, healthy.stderr
    assert "xfs at 0" in res.stdout, res.stdout
    damaged = parse_mapfile(str(tmp_path / "d")).bmap
    whole = parse_mapfile(str(tmp_path / "d2")).bmap
    assert whole.size_of("+") > 0
    assert damaged.size_of("+") >= whole.size_of("+") - 4096  # all but the bad sector's page
