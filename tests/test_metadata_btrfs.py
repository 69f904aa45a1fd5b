"""The btrfs planner against ``btrfs check`` and the kernel's reads, and against what mkfs put in.

Images are made by ``mkfs.btrfs --rootdir`` from the tree of :func:`tests.fsimages.populate_tree`
(no mount needed: the kernel here mounts btrfs read-only only): with the default DUP metadata,
with ``-m single``, and one of 260 GiB (sparse) that has all three superblock copies.
"""

from __future__ import annotations

import os
import random
import re
import struct
import subprocess
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.metadata import btrfs, signatures
from engine.metadata.btrfs_super import (
    DUP,
    RAID0,
    RAID1,
    RAID6,
    RAID10,
    Chunk,
    ChunkMap,
    csum_ok,
)
from engine.metadata.checksums import crc32c
from engine.metadata.planner import plan_disk
from engine.metadata.volume import P0, P1, P2, P3, P4, Plan, Volume
from tests.fsimages import (
    ImageReader,
    coverage,
    make_disk,
    outside,
    place,
    populate_tree,
    read_logged,
)
from tests.test_metadata_signatures import Disk, volume

MiB, GiB = 1 << 20, 1 << 30
SUPER = 64 * 1024
MIRROR1, MIRROR2 = 64 * MiB, 256 * GiB
NODESIZE = 16384


# ------------------------------------------------------------------ images
def mkfs(path: Path, tree: Path, size: int, *extra: str) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size)
    subprocess.run(
        ["mkfs.btrfs", "-q", "-f", "--rootdir", str(tree), *extra, str(path)],
        check=True,
        capture_output=True,
    )
    return path


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("btrfs") / "tree"
    populate_tree(root, nfiles=1000)
    return root


@pytest.fixture(scope="module")
def images(tree: Path) -> dict[str, Path]:
    work = tree.parent
    return {
        "dup": mkfs(work / "dup.img", tree, 768 * MiB),  # the default: metadata DUP
        "single": mkfs(work / "single.img", tree, 768 * MiB, "-m", "single"),
        "huge": mkfs(work / "huge.img", tree, 260 * GiB),
    }


def plan_of(
    image: Path, bad: list[tuple[int, int]] | None = None, patch: dict[int, bytes] | None = None
) -> tuple[Plan, ImageReader]:
    reader = ImageReader(image, bad or [], patch)
    return plan_disk(reader, reader.size), reader


def walked(tree: Path) -> tuple[int, int]:
    """(directories, files) as os.walk sees them, the root included."""
    dirs = files = 0
    for _root, _dirs, names in os.walk(tree):
        dirs += 1
        files += len(names)
    return dirs, files


def counts(plan: Plan) -> tuple[int, int]:
    return plan.counts.get("btrfs:directories", 0), plan.counts.get("btrfs:files", 0)


def check_figures(image: Path) -> dict[str, int]:
    """``btrfs check --readonly``'s summary: "total tree bytes", "file data blocks allocated"."""
    out = subprocess.run(
        ["btrfs", "check", "--readonly", str(image)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return {k: int(v) for k, v in re.findall(r"^\s*([a-z ]+): (\d+)$", out.stdout, re.M)}


def node_areas(plan: Plan, what: str, tier: int = P2) -> list[int]:
    return sorted(a.start for a in plan.areas if a.what == what and a.tier == tier)


def unmount(mnt: Path) -> None:
    subprocess.run(["umount", str(mnt)], check=False, capture_output=True, timeout=60)


def mount_and_walk(dev: str, mnt: Path, read_data: bool = False) -> None:
    """A read-only mount (``-t``: no libblkid probing of every signature) walked to every
    file, with ``read_data`` each file read whole."""
    mnt.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "btrfs", "-o", "ro", dev, str(mnt)], check=True, timeout=60)
    try:
        for root, _dirs, names in os.walk(mnt):
            for name in names:
                path = os.path.join(root, name)
                os.lstat(path)
                if read_data:
                    with open(path, "rb") as fh:
                        while fh.read(1 << 20):
                            pass
        os.statvfs(mnt)
    finally:
        unmount(mnt)


# ------------------------------------------------------------------ against the tools
@pytest.mark.fuse
@pytest.mark.parametrize("kind", ["dup", "single"])
def test_check_and_mount_read_inside_p0_p3(
    images: dict[str, Path], kind: str, tmp_path: Path
) -> None:
    image = images[kind]
    plan, reader = plan_of(image)
    assert plan.filesystems == [(0, reader.size, "btrfs")]
    assert plan.notes == []
    p3 = plan.ranges(P3)
    tools: dict[str, Callable[[str], object] | list[str]] = {
        "check": ["btrfs", "check", "--readonly", "{dev}"],
        "mount": partial(mount_and_walk, mnt=tmp_path / "mnt"),
    }
    for name, tool in tools.items():
        reads = read_logged(image, tool, tmp_path / name, loop=True)
        assert sum(n for _, n in reads) > 2 * MiB, name  # the whole fs tree, at least
        share = coverage(reads, p3)
        assert share >= 0.99, (name, share, outside(reads, p3)[:10])
        # what they read of btrfs is the first copy of each node: P0-P2 alone has it
        assert coverage(reads, plan.ranges(P2)) >= 0.99, name


@pytest.mark.fuse
def test_reading_every_file_reads_inside_p0_p4(images: dict[str, Path], tmp_path: Path) -> None:
    """The data extents (P4) and the checksum tree (P2) are what reading the files adds."""
    image = images["dup"]
    plan, _ = plan_of(image)
    tool = partial(mount_and_walk, mnt=tmp_path / "mnt", read_data=True)
    reads = read_logged(image, tool, tmp_path / "log", loop=True)
    assert sum(n for _, n in reads) > 6 * MiB
    assert coverage(reads, plan.ranges(P4)) >= 0.99, outside(reads, plan.ranges(P4))[:10]


@pytest.mark.parametrize("kind", ["dup", "single"])
def test_figures_match_btrfs_check(images: dict[str, Path], kind: str) -> None:
    """Each tree node once at P1/P2 ("total tree bytes"), its DUP copy at P3, the file data at
    P4 ("file data blocks allocated"), and P0-P2 a small share of the volume."""
    image = images[kind]
    plan, reader = plan_of(image)
    figures = check_figures(image)
    nodes = [a for a in plan.areas if a.tier in (P1, P2) and a.what.startswith("btrfs")]
    assert sum(a.size for a in nodes) == figures["total tree bytes"]
    copies = [a for a in plan.areas if a.tier == P3 and a.what.endswith(" tree copy")]
    assert sum(a.size for a in copies) == (figures["total tree bytes"] if kind == "dup" else 0)
    assert plan.size_of(P4, P4) == figures["file data blocks allocated"]
    assert plan.size_of(P2) < 0.01 * reader.size, plan.size_of(P2)
    assert node_areas(plan, "btrfs superblock", P0) == [SUPER]
    assert node_areas(plan, "btrfs superblock mirror 1", P3) == [MIRROR1]
    # each node is read once (the planner's cache answers the repeated 4 KiB superblock reads)
    assert [r for r in reader.duplicates() if r[1] > 4096] == []


def mirrors(image: Path, logical: int) -> list[int]:
    """Where btrfs-map-logical says the copies of ``logical`` are (none if in no chunk)."""
    out = subprocess.run(
        ["btrfs-map-logical", "-l", str(logical), str(image)], capture_output=True, text=True
    ).stdout
    return [int(p) for p in re.findall(r"^mirror \d+ logical \d+ physical (\d+)", out, re.M)]


@pytest.mark.parametrize("kind", ["dup", "single"])
def test_backup_roots_are_planned_p3(images: dict[str, Path], kind: str) -> None:
    """The superblock's backup roots (older commits), every copy, by btrfs-map-logical."""
    image = images[kind]
    plan, _ = plan_of(image)
    dump = subprocess.run(
        ["btrfs", "inspect-internal", "dump-super", "-f", str(image)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    roots = {int(b) for b in re.findall(r"^\s+(?:backup_\w+_root|csum_root):\s+(\d+)", dump, re.M)}
    mapped = 0
    for logical in roots:  # some are in mkfs's first, temporary chunks, now gone
        places = mirrors(image, logical)
        assert len(places) in (0, 2 if kind == "dup" else 1)
        mapped += bool(places)
        for pos in places:
            assert coverage([(pos, NODESIZE)], plan.ranges(P3)) == 1.0, (logical, pos)
    assert mapped >= 6


def test_counts_match_the_tree_and_dump_tree(images: dict[str, Path], tree: Path) -> None:
    plan, _ = plan_of(images["dup"])
    assert counts(plan) == walked(tree)
    assert plan.counts["btrfs:subvolumes"] == 1
    dump = subprocess.run(
        ["btrfs", "inspect-internal", "dump-tree", "-t", "fs", str(images["dup"])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    extents = {int(b) for b in re.findall(r"extent data disk byte (\d+)", dump) if int(b)}
    assert plan.counts["btrfs:data extents"] == len(extents) > 0
    assert len(re.findall(r"^\s*leaf \d+ items", dump, re.M)) > 100  # a tree of some depth


# ------------------------------------------------------------------ damage
def assert_same_plan(plan: Plan, whole: Plan) -> None:
    assert plan.areas == whole.areas
    assert plan.counts == whole.counts


@pytest.mark.parametrize("damage", ["unreadable", "checksum"])
def test_mirror_at_64_mib_when_the_primary_is_lost(images: dict[str, Path], damage: str) -> None:
    image = images["dup"]
    whole, _ = plan_of(image)
    if damage == "unreadable":
        plan, _ = plan_of(image, bad=[(SUPER, SUPER + 4096)])
    else:
        plan, _ = plan_of(image, patch={SUPER + 0x200: b"\xff"})
    assert plan.filesystems == whole.filesystems
    assert_same_plan(plan, whole)
    (note,) = plan.notes
    assert "primary superblock" in note and f"mirror at {MIRROR1}" in note, note
    assert ("unreadable" in note) == (damage == "unreadable")


def test_mirror_at_256_gib_when_the_first_two_are_lost(images: dict[str, Path]) -> None:
    image = images["huge"]
    whole, _ = plan_of(image)
    assert node_areas(whole, "btrfs superblock mirror 2", P3) == [MIRROR2]
    plan, _ = plan_of(image, bad=[(SUPER, SUPER + 4096), (MIRROR1, MIRROR1 + 4096)])
    assert_same_plan(plan, whole)
    assert any(f"mirror at {MIRROR2}" in n for n in plan.notes), plan.notes
    # without any copy: nothing is planned as btrfs, and nothing raises
    bad = [(o, o + 4096) for o in signatures.BTRFS_SUPER_OFFSETS]
    plan, _ = plan_of(image, bad=bad)
    assert plan.filesystems == []


def first_leaf(plan: Plan, what: str = "btrfs fs tree") -> int:
    """A leaf of the fs tree: a P2 node from the middle (the root is planned first)."""
    starts = [a.start for a in plan.areas if a.what == what and a.tier == P2]
    return starts[len(starts) // 2]


def corrupt(image: Path, pos: int) -> dict[int, bytes]:
    with open(image, "rb") as fh:
        byte = os.pread(fh.fileno(), 1, pos + 2000)
    return {pos + 2000: bytes([byte[0] ^ 0x55])}


def test_a_bad_leaf_without_a_copy_is_planned_not_walked(images: dict[str, Path]) -> None:
    image = images["single"]
    whole, _ = plan_of(image)
    leaf = first_leaf(whole)
    plan, _ = plan_of(image, patch=corrupt(image, leaf))
    assert any(f"{leaf}" in n and "checksum" in n for n in plan.notes), plan.notes
    assert plan.counts["btrfs:bad nodes"] == 1
    assert leaf in node_areas(plan, "btrfs fs tree")
    dirs, files = counts(plan)
    assert 0 < files < counts(whole)[1] and 0 < dirs <= counts(whole)[0]


def test_a_bad_leaf_is_read_from_its_dup_copy(images: dict[str, Path]) -> None:
    image = images["dup"]
    whole, _ = plan_of(image)
    leaf = first_leaf(whole)
    plan, _ = plan_of(image, patch=corrupt(image, leaf))
    assert plan.areas == whole.areas
    assert counts(plan) == counts(whole)
    assert plan.counts["btrfs:nodes read from another copy"] == 1
    # both copies bad: noted, planned, not walked
    i = node_areas(whole, "btrfs fs tree").index(leaf)
    copy = node_areas(whole, "btrfs fs tree copy", P3)[i]
    plan, _ = plan_of(image, patch=corrupt(image, leaf) | corrupt(image, copy))
    assert plan.counts["btrfs:bad nodes"] == 1
    assert counts(plan)[1] < counts(whole)[1]


def resum(node: bytearray) -> None:
    struct.pack_into("<I", node, 0, crc32c(0xFFFFFFFF, bytes(node[32:])) ^ 0xFFFFFFFF)


def test_corrupt_nodes_with_good_checksums_never_raise_nor_hang(images: dict[str, Path]) -> None:
    """Random bytes in the items of trusted nodes (the checksum made to match): the walk ends,
    and every problem is a note."""
    image = images["single"]
    whole, _ = plan_of(image)
    nodes = sorted({a.start for a in whole.areas if a.tier in (P1, P2) and "tree" in a.what})
    rng = random.Random(5)
    notes = 0
    fd = os.open(image, os.O_RDONLY)
    for _ in range(10):
        patch: dict[int, bytes] = {}
        for pos in rng.sample(nodes, 4):
            node = bytearray(os.pread(fd, NODESIZE, pos))
            for _ in range(rng.randrange(1, 40)):
                # nritems, level, item headers and key pointers; or anywhere in the items
                at = rng.randrange(0x60, rng.choice([0x400, NODESIZE - 8]))
                node[at : at + 8] = rng.randbytes(8)
            resum(node)
            assert csum_ok(bytes(node))
            patch[pos] = bytes(node)
        reader = ImageReader(image, (), patch)
        vol = Volume(reader, 0, reader.size, Plan(reader.size))
        assert btrfs.probe(vol)
        btrfs.plan(vol)  # raises nothing
        assert len(reader.reads) < 2 * len(nodes) + 10
        notes += len(vol.plan.notes)
    os.close(fd)
    assert notes > 0  # the damage was seen


def test_other_checksum_types_are_walked_unverified(tree: Path, tmp_path: Path) -> None:
    image = mkfs(tmp_path / "xx.img", tree, 512 * MiB, "--csum", "xxhash")
    plan, _ = plan_of(image)
    assert plan.filesystems == [(0, 512 * MiB, "btrfs")]
    assert counts(plan) == walked(tree)
    assert any("checksum type 1" in n for n in plan.notes), plan.notes


# ------------------------------------------------------------------ the chunk map
def test_chunk_map_profiles() -> None:
    """Mirrored copies whole, in stripe order; RAID0/RAID10 split at stripe boundaries onto
    this device's stripes; RAID5/6 and unmapped addresses give nothing."""
    k64 = 64 * 1024
    chunks = ChunkMap(devid=1)
    assert chunks.add(Chunk(1 * GiB, 256 * MiB, 4 | DUP, k64, 1, ((1, 10 * MiB), (1, 300 * MiB))))
    assert chunks.add(Chunk(2 * GiB, 256 * MiB, 1 | RAID1, k64, 1, ((2, 5 * MiB), (1, 9 * MiB))))
    assert chunks.add(Chunk(3 * GiB, 256 * MiB, 1 | RAID0, k64, 1, ((1, 0), (2, 0))))
    raid10 = ((1, 0), (2, 0), (1, GiB), (3, 0))  # stripes 0/1 mirror each other, 2/3 too
    assert chunks.add(Chunk(4 * GiB, 256 * MiB, 1 | RAID10, k64, 2, raid10))
    assert chunks.add(Chunk(5 * GiB, 256 * MiB, 1 | RAID6, k64, 1, ((1, 0), (2, 0), (3, 0))))
    assert not chunks.add(Chunk(1 * GiB + MiB, MiB, 4, k64, 1, ((1, 0),)))  # overlaps
    assert chunks.copies(1 * GiB + 4096, NODESIZE) == [
        [(10 * MiB + 4096, NODESIZE)],
        [(300 * MiB + 4096, NODESIZE)],
    ]
    assert chunks.copies(2 * GiB, 4096) == [[(9 * MiB, 4096)]]  # the other copy is on dev 2
    # RAID0: stripes 0, 2, 4.. of the chunk are on device 1, one row down each time
    assert chunks.copies(3 * GiB + 4096, 4 * k64) == [
        [(4096, k64 - 4096), (k64, k64), (2 * k64, 4096)]
    ]
    # RAID10: row 0 is stripes 0/1 (dev 1, dev 2), then 2/3 (dev 1 at 1 GiB, dev 3)
    assert chunks.copies(4 * GiB, 3 * k64) == [[(0, k64), (GiB, k64), (k64, k64)]]
    assert chunks.copies(5 * GiB, 4096) == []
    assert chunks.copies(6 * GiB, 4096) == []
    assert chunks.copies(1 * GiB + 255 * MiB, 4 * MiB) == [[(265 * MiB, MiB)], [(555 * MiB, MiB)]]


# ------------------------------------------------------------------ the planner, partitions
def test_gpt_partition_is_recognised(images: dict[str, Path], tree: Path, tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    ((start, size),) = make_disk(disk, "label: gpt\nstart=2048, size=1572864\n", 800 * MiB)
    assert size == 768 * MiB
    place(disk, images["dup"], start)
    plan, _ = plan_of(disk)
    assert plan.filesystems == [(start, size, "btrfs")]
    assert counts(plan) == walked(tree)
    assert node_areas(plan, "btrfs superblock", P0) == [start + SUPER]
    alone, _ = plan_of(images["dup"])
    assert plan.size_of(P4, P4) == alone.size_of(P4, P4)


# ------------------------------------------------------------------ the signature contract
def rebased(raw: bytes, offset: int) -> bytes:
    """A superblock moved to ``offset`` (its own position field, checksum redone)."""
    sb = bytearray(raw)
    struct.pack_into("<Q", sb, 0x30, offset)
    resum(sb)
    return bytes(sb)


@pytest.fixture(scope="module")
def real_super(images: dict[str, Path]) -> bytes:
    with open(images["dup"], "rb") as fh:
        return os.pread(fh.fileno(), 4096, SUPER)


KINDS = ["valid", "misplaced", "magic only", "random", "zeros"]


@settings(max_examples=300, deadline=None)
@given(
    size=st.sampled_from([32 * MiB, 64 * MiB + 4096, 300 * MiB, 260 * GiB]),
    planted=st.dictionaries(
        st.sampled_from(signatures.BTRFS_SUPER_OFFSETS), st.sampled_from(KINDS), max_size=3
    ),
    bad=st.sets(st.sampled_from(signatures.BTRFS_SUPER_OFFSETS), max_size=2),
    seed=st.integers(0, 1 << 30),
)
def test_probe_keeps_the_signature_contract(
    real_super: bytes, size: int, planted: dict[int, str], bad: set[int], seed: int
) -> None:
    """probe => signature; when both fail they read the same; probe finds exactly the valid,
    readable copies that fit."""
    rng = random.Random(seed)
    blocks: dict[int, bytes] = {}
    for off, kind in planted.items():
        raw = bytearray(rng.randbytes(4096))
        if kind == "valid":
            raw = bytearray(rebased(real_super, off))
        elif kind == "misplaced":
            raw = bytearray(rebased(real_super, off + 4096))
        elif kind == "zeros":
            raw = bytearray(4096)
        if kind == "magic only":
            raw[0x40:0x48] = signatures.BTRFS_MAGIC
        blocks[off] = bytes(raw)
    disk = Disk(size, blocks, bad)
    found = btrfs.probe(volume(disk))
    probe_reads = list(disk.reads)
    disk.reads.clear()
    passed = signatures.btrfs(volume(disk))
    assert passed or not found
    if not found and not passed:
        assert probe_reads == disk.reads
    fits = [o for o in signatures.BTRFS_SUPER_OFFSETS if o + 4096 <= size]
    assert found == any(planted.get(o) == "valid" and o not in bad for o in fits)


def test_probe_on_real_images_and_blank_disks(images: dict[str, Path]) -> None:
    for image in images.values():
        vol = Volume(ImageReader(image), 0, image.stat().st_size, Plan(image.stat().st_size))
        assert btrfs.probe(vol) and signatures.btrfs(vol)
    disk = Disk(300 * MiB, {}, set())
    assert not btrfs.probe(volume(disk))
    assert disk.reads == [(SUPER, 4096), (MIRROR1, 4096)]
