"""Metadata first at real sizes: sparse 2 TiB GPT disks with one ext4 or NTFS partition of 3,000
files.

The P0-P2 plan must stay within 2x the bytes ``e2fsck -fn`` reads (NTFS: ``ntfsfix -n`` and a
read-only ntfs-3g mount walked to every file), recorded through the read-logging FUSE view of
``ddfs simulate`` by a read-only loop device without readahead; at least 99 % of those reads
must fall inside P0-P3, and planning must take under 10 s and 200 MB.
What makes it so: the bitmaps of uninitialized groups and the unused part of each inode table
are not planned when the group descriptor's checksum holds (``metadata_csum`` here); a
descriptor that fails its checksum is planned whole (``test_a_bad_descriptor_checksum...``).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from engine.metadata.checksums import crc16, crc32c
from engine.metadata.ext_super import BG_BLOCK_UNINIT, BG_INODE_UNINIT
from engine.metadata.planner import plan_disk
from engine.metadata.volume import P2, P3, Plan
from tests.fsimages import coverage, populate_tree, read_logged
from tests.test_metadata_ntfs import mounted_rw, unmount

pytestmark = pytest.mark.fuse
MiB = 1 << 20
TiB = 1 << 40
REPO = Path(__file__).resolve().parent.parent


def ext4_disk(path: Path, tree: Path, size: int) -> tuple[int, int]:
    """A sparse GPT disk of ``size`` bytes with one ext4 partition filling it (made in place by
    ``mkfs.ext4 -E offset``, so nothing of the 2 TiB is written but the filesystem's own)."""
    with open(path, "wb") as fh:
        fh.truncate(size)
    start, psize = MiB, size - 2 * MiB
    layout = f"label: gpt\nstart={start // 512}, size={psize // 512}\n"
    subprocess.run(["sfdisk", "-q", str(path)], input=layout, text=True, check=True)
    mkfs = ["mkfs.ext4", "-q", "-F", "-E", f"offset={start}", "-d", str(tree)]
    subprocess.run([*mkfs, str(path), f"{psize // 1024}k"], check=True)
    return start, psize


def plan_of(path: Path) -> Plan:
    fd = os.open(path, os.O_RDONLY)
    try:
        return plan_disk(lambda pos, n: os.pread(fd, n, pos), os.fstat(fd).st_size)
    finally:
        os.close(fd)


def ntfs_disk(path: Path, tree: Path, size: int) -> tuple[int, int]:
    """A sparse GPT disk with one NTFS partition filling it (``mkntfs -Q`` through a loop
    device), ``tree`` copied in through ntfs-3g."""
    with open(path, "wb") as fh:
        fh.truncate(size)
    start, psize = MiB, size - 2 * MiB
    layout = f"label: gpt\nstart={start // 512}, size={psize // 512}\n"
    subprocess.run(["sfdisk", "-q", str(path)], input=layout, text=True, check=True)
    dev = subprocess.run(
        ["losetup", "-f", "--show", "-o", str(start), "--sizelimit", str(psize), str(path)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    try:
        subprocess.run(["mkntfs", "-Q", "-F", "-q", dev], check=True, capture_output=True)
        mounted_rw(Path(dev), path.parent / "ntfs-mnt", lambda mnt: copy_tree(tree, mnt))
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=30)
    return start, psize


def copy_tree(tree: Path, mnt: Path) -> None:
    subprocess.run(["cp", "-r", *(str(p) for p in tree.iterdir()), str(mnt)], check=True)


def mount_and_walk(dev: str, mnt: Path) -> None:
    """What a technician does first: ``ntfsfix -n``, then a read-only mount walked to every
    file (and a ``df``)."""
    subprocess.run(["ntfsfix", "-n", dev], capture_output=True, timeout=120)
    mnt.mkdir(exist_ok=True)
    subprocess.run(["ntfs-3g", "-o", "ro", dev, str(mnt)], check=True, timeout=60)
    try:
        for root, _dirs, files in os.walk(mnt):
            for name in files:
                os.lstat(os.path.join(root, name))
        os.statvfs(mnt)
    finally:
        unmount(mnt)


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    work = tmp_path_factory.mktemp("ext2tib")
    populate_tree(work / "tree", nfiles=3000)
    path = work / "disk.img"
    start, size = ext4_disk(path, work / "tree", 2 * TiB)
    return path, start, size


def test_plan_follows_what_e2fsck_reads(disk: tuple[Path, int, int], tmp_path: Path) -> None:
    path, start, size = disk
    reads = read_logged(path, ["e2fsck", "-fn", "{dev}"], tmp_path, offset=start, size=size)
    fsck_bytes = sum(n for _, n in reads)
    plan = plan_of(path)
    assert plan.counts["ext:files"] >= 3000
    p2 = plan.size_of(P2)
    assert fsck_bytes > 1 * MiB
    assert p2 <= 2 * fsck_bytes, (p2, fsck_bytes)
    assert coverage(reads, plan.ranges(P3)) >= 0.99
    assert coverage(reads, plan.ranges(P2)) >= 0.99


@pytest.fixture(scope="module")
def ntfs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    work = tmp_path_factory.mktemp("ntfs2tib")
    populate_tree(work / "tree", nfiles=3000)
    path = work / "disk.img"
    start, size = ntfs_disk(path, work / "tree", 2 * TiB)
    return path, start, size


def test_ntfs_plan_follows_what_ntfsfix_and_a_mount_read(
    ntfs: tuple[Path, int, int], tmp_path: Path
) -> None:
    path, start, size = ntfs
    tool = partial(mount_and_walk, mnt=tmp_path / "mnt")
    reads = read_logged(path, tool, tmp_path / "log", offset=start, size=size)
    read_bytes = sum(n for _, n in reads)
    plan = plan_of(path)
    assert plan.counts["ntfs:files"] >= 3000, plan.counts
    p2 = plan.size_of(P2)
    assert read_bytes > 1 * MiB
    assert p2 <= 2 * read_bytes, (p2, read_bytes)
    assert coverage(reads, plan.ranges(P3)) >= 0.99


@pytest.mark.parametrize("which", ["ext4", "ntfs"])
def test_planning_takes_under_10_s_and_200_mb(
    which: str, request: pytest.FixtureRequest
) -> None:
    """Measured in a process of its own: wall time and peak memory (``VmHWM``: its own, not
    the forking parent's high-water mark, which ``ru_maxrss`` inherits) of planning the disk."""
    path, _, _ = request.getfixturevalue("disk" if which == "ext4" else "ntfs")
    code = (
        "import os, sys, time\n"
        "from engine.metadata.planner import plan_disk\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
        "t = time.monotonic()\n"
        "plan = plan_disk(lambda p, n: os.pread(fd, n, p), os.fstat(fd).st_size)\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(time.monotonic() - t, hwm.split()[1])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, text=True,
        check=True,
    ).stdout.split()
    seconds, rss_kib = float(out[0]), int(out[1])
    assert seconds < 10, seconds
    assert rss_kib < 200 * 1024, rss_kib


def test_a_bad_descriptor_checksum_plans_the_group_whole(tmp_path: Path) -> None:
    """One group descriptor with a wrong checksum: its bitmaps and whole inode table are
    planned (its flags and ``itable_unused`` are not trusted); the others stay trimmed."""
    tree = tmp_path / "tree"
    populate_tree(tree, nfiles=50)
    path = tmp_path / "disk.img"
    start, _ = ext4_disk(path, tree, 4 << 30)
    good = plan_of(path)
    with open(path, "r+b") as fh:
        fh.seek(start + 1024)
        raw = fh.read(1024)
        bs = 1024 << struct.unpack_from("<I", raw, 24)[0]
        ipg = struct.unpack_from("<I", raw, 40)[0]
        isize = struct.unpack_from("<H", raw, 88)[0]
        desc_size = struct.unpack_from("<H", raw, 254)[0]
        group = 5
        gdt = start + (bs if bs > 1024 else 2048)
        fh.seek(gdt + group * desc_size)
        desc = bytearray(fh.read(desc_size))
        flags = struct.unpack_from("<H", desc, 18)[0]
        assert flags & (BG_INODE_UNINIT | BG_BLOCK_UNINIT), "group 5 is in use: pick another"
        table = struct.unpack_from("<I", desc, 8)[0] | struct.unpack_from("<I", desc, 40)[0] << 32
        desc[30] ^= 0xFF  # the checksum no longer holds
        fh.seek(gdt + group * desc_size)
        fh.write(desc)
    bad = plan_of(path)
    whole = (start + table * bs, start + table * bs + ipg * isize)
    inside = coverage([(whole[0], whole[1] - whole[0])], bad.ranges(P2))
    assert inside == 1.0
    assert coverage([(whole[0], whole[1] - whole[0])], good.ranges(P2)) < 0.5
    assert bad.size_of(P2) - good.size_of(P2) >= ipg * isize - 2 * bs


def test_checksum_functions_give_the_standard_check_values() -> None:
    assert crc32c(0xFFFFFFFF, b"123456789") ^ 0xFFFFFFFF == 0xE3069283  # CRC-32C
    assert crc16(0, b"123456789") == 0xBB3D  # CRC-16/ARC, Linux crc16
