"""The FAT12/16/32 and exFAT modules of the metadata planner.

Images are made by mkfs.vfat + mtools and by mkfs.exfat + exfat-fuse (on a loop device; without
it only an empty exFAT is tested). The oracles: libfsfat (pyfsfat) walks each image
independently (counts, file extents), and fsck.vfat / fsck.exfat, served through
``ddfs simulate --log-reads``, must read only inside the planned P0-P3 areas. Damage is
simulated by a reader that answers None (unreadable) or other bytes (corruption).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pyfsfat
import pytest

from engine.metadata import exfat, fat
from engine.metadata.planner import plan_disk
from engine.metadata.volume import Plan, Volume
from tests.fsimages import (
    ImageReader,
    can_log_reads,
    coverage,
    loop_range,
    make_disk,
    overlap,
    place,
    populate_tree,
    read_logged,
    rounded,
)
from tests.simdisk import is_mounted

MiB = 1 << 20
FAT_KINDS = {  # name: (MiB, mkfs.vfat options)
    "fat12": (16, ["-F", "12"]),
    "fat16": (32, ["-F", "16"]),
    "fat32": (64, ["-F", "32", "-S", "512", "-s", "1"]),
}
EXFAT_MIB = 32
fuse = pytest.mark.fuse
needs_fuse = pytest.mark.fuse


# ------------------------------------------------------------------ images
def _mkfs_fat(path: Path, kind: str) -> None:
    mib, opts = FAT_KINDS[kind]
    subprocess.run(
        ["mkfs.vfat", "-C", *opts, str(path), str(mib * 1024)], check=True, capture_output=True
    )


def _fragment(img: Path, small: Path, kind: str) -> None:
    """A directory of small files, every other one deleted, then a file written into the gaps."""
    run = ["mcopy", "-i", str(img)]
    subprocess.run(["mmd", "-i", str(img), "::frag"], check=True)
    subprocess.run([*run, *sorted(map(str, small.glob("s*"))), "::frag/"], check=True)
    gone = [f"::frag/s{i:02d}" for i in range(0, 40, 2)]
    subprocess.run(["mdel", "-i", str(img), *gone], check=True)
    if kind == "fat32":  # forget FSInfo's next-free hint so that mtools fills the gaps
        with open(img, "r+b") as fh:
            fh.seek(512 + 492)
            fh.write(b"\xff\xff\xff\xff")
    subprocess.run([*run, str(small / "fragmented.bin"), "::frag/"], check=True)


def _fill_exfat(img: Path, tree: Path, mnt: Path) -> bool:
    """Copy ``tree`` into the exFAT ``img`` through exfat-fuse on a loop device."""
    exe = shutil.which("mount.exfat-fuse")
    if exe is None or not can_log_reads():
        return False
    dev = subprocess.run(
        ["losetup", "-f", "--show", str(img)], capture_output=True, text=True, check=True
    ).stdout.strip()
    mnt.mkdir()
    proc = subprocess.Popen(
        [exe, "-d", dev, str(mnt)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while not is_mounted(mnt) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if not is_mounted(mnt):
            return False
        shutil.copytree(tree, mnt, dirs_exist_ok=True)
        subprocess.run(["umount", str(mnt)], check=True, timeout=30)
        return proc.wait(30) == 0
    finally:
        if is_mounted(mnt):
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """fat12, fat16, fat32, exfat-empty, and exfat (populated) when exfat-fuse works."""
    base = tmp_path_factory.mktemp("fatimages")
    tree, small = base / "tree", base / "small"
    populate_tree(tree, nfiles=600)
    small.mkdir()
    for i in range(40):
        (small / f"s{i:02d}").write_bytes(os.urandom(3000))
    (small / "fragmented.bin").write_bytes(os.urandom(100_000))
    out: dict[str, Path] = {}
    for kind in FAT_KINDS:
        img = out[kind] = base / f"{kind}.img"
        _mkfs_fat(img, kind)
        subprocess.run(["mcopy", "-s", "-i", str(img), *map(str, tree.iterdir()), "::"], check=True)
        _fragment(img, small, kind)
    empty = out["exfat-empty"] = base / "exfat-empty.img"
    with open(empty, "wb") as fh:
        fh.truncate(EXFAT_MIB * MiB)
    subprocess.run(["mkfs.exfat", str(empty)], check=True, capture_output=True)
    full = base / "exfat.img"
    shutil.copyfile(empty, full)
    if _fill_exfat(full, tree, base / "exfat-mnt"):
        out["exfat"] = full
    return out


def image(images: dict[str, Path], kind: str) -> Path:
    if kind not in images:
        pytest.fail("exFAT could not be populated (needs exfat-fuse, /dev/fuse and a loop device)")
    return images[kind]


# ------------------------------------------------------------------ the oracle
@dataclass
class Walk:
    """What libfsfat finds: subdirectories, files, and the data extents of the files."""

    dirs: int
    files: int
    extents: list[tuple[int, int]]  # (start, end)


def libfsfat_walk(path: Path) -> Walk:
    vol = pyfsfat.volume()
    with open(path, "rb") as fh:
        vol.open_file_object(fh)
        walk = Walk(0, 0, [])
        todo = [vol.root_directory]
        while todo:
            for entry in todo.pop().sub_file_entries:
                if entry.file_attribute_flags & pyfsfat.file_attribute_flags.DIRECTORY:
                    walk.dirs += 1
                    todo.append(entry)
                    continue
                walk.files += 1
                for i in range(entry.number_of_extents):
                    off, size, _flags = entry.get_extent(i)
                    walk.extents.append((off, off + size))
        vol.close()
    return walk


def name_of(kind: str) -> str:
    return "exfat" if kind.startswith("exfat") else "fat"


def module_of(kind: str):  # type: ignore[no-untyped-def]
    return exfat if kind.startswith("exfat") else fat


def planned(path: Path, **damage: object) -> tuple[Plan, ImageReader]:
    reader = ImageReader(path, **damage)  # type: ignore[arg-type]
    return plan_disk(reader, reader.size), reader


def assert_same_tree(plan: Plan, walk: Walk, name: str) -> None:
    """Counts equal libfsfat's (+1: the planner counts the root), every file extent in P4."""
    assert plan.counts.get(f"{name}:directories") == walk.dirs + 1
    assert plan.counts.get(f"{name}:files", 0) == walk.files
    data = sum(e - s for s, e in walk.extents)
    assert overlap(walk.extents, plan.ranges(4, 4)) == data


ALL = [*FAT_KINDS, "exfat", "exfat-empty"]


# ------------------------------------------------------------------ whole, undamaged images
@pytest.mark.parametrize("kind", ALL)
def test_plan_matches_libfsfat(images: dict[str, Path], kind: str) -> None:
    path = image(images, kind)
    plan, reader = planned(path)
    assert plan.filesystems == [(0, reader.size, name_of(kind))]
    assert plan.notes == []
    assert_same_tree(plan, libfsfat_walk(path), name_of(kind))
    assert plan.size_of(2) < 0.03 * reader.size  # the core is a few percent of the volume
    if kind != "exfat-empty":
        assert plan.counts[f"{name_of(kind)}:files"] > 600


def test_fragmented_file_is_planned(images: dict[str, Path]) -> None:
    walk = libfsfat_walk(images["fat32"])
    assert len(walk.extents) > walk.files  # the fragmented file has many extents
    plan, _ = planned(images["fat32"])
    assert overlap(walk.extents, plan.ranges(4, 4)) == sum(e - s for s, e in walk.extents)


@pytest.mark.parametrize("kind", ALL)
def test_module_reads_once_and_only_planned_metadata(images: dict[str, Path], kind: str) -> None:
    reader = ImageReader(image(images, kind))
    vol = Volume(reader, 0, reader.size, Plan(reader.size))
    module = module_of(kind)
    assert module.probe(vol)
    module.plan(vol)
    assert reader.duplicates() == []
    assert coverage(reader.reads, vol.plan.ranges(3)) == 1.0
    assert sum(n for _, n in reader.reads) <= vol.plan.size_of(3)


# ------------------------------------------------------------------ what fsck reads
@fuse
@needs_fuse
@pytest.mark.parametrize("kind", [*FAT_KINDS, "exfat"])
def test_fsck_reads_inside_planned_areas(
    images: dict[str, Path], kind: str, tmp_path: Path
) -> None:
    path = image(images, kind)
    plan, _ = planned(path)
    tool = "fsck.exfat" if kind == "exfat" else "fsck.vfat"
    reads = read_logged(path, [tool, "-n", "{dev}"], tmp_path)
    assert len(reads) > 10
    assert coverage(reads, plan.ranges(3)) >= 0.99


# ------------------------------------------------------------------ damaged FAT
def _geometry(path: Path) -> fat.Geometry:
    with open(path, "rb") as fh:
        geo = fat.parse_boot(fh.read(512))
    assert geo is not None
    return geo


@pytest.mark.parametrize("damage", ["unreadable", "zeroed"])
def test_fat32_backup_boot_sector(images: dict[str, Path], damage: str) -> None:
    path = images["fat32"]
    whole, _ = planned(path)
    if damage == "unreadable":
        plan, _ = planned(path, bad=[(0, 512)])
    else:
        plan, _ = planned(path, patch={0: bytes(512)})
    assert plan.filesystems == whole.filesystems
    assert any("backup at sector 6" in n for n in plan.notes)
    assert plan.counts == whole.counts
    assert plan.ranges(4, 1) == whole.ranges(4, 1)
    assert overlap([(6 * 512, 7 * 512)], plan.ranges(0)) == 512  # the backup became an anchor


def test_fat16_without_boot_sector_is_not_planned(images: dict[str, Path]) -> None:
    plan, _ = planned(images["fat16"], bad=[(0, 512)])
    assert plan.filesystems == []
    assert any("no known filesystem" in n for n in plan.notes)


@pytest.mark.parametrize("kind", list(FAT_KINDS))
def test_fat_copy_2_when_fat_1_unreadable(images: dict[str, Path], kind: str) -> None:
    path = images[kind]
    geo = _geometry(path)
    whole, _ = planned(path)
    plan, reader = planned(path, bad=[(geo.fat_pos(0), geo.fat_pos(0) + geo.fat_used)])
    assert any("read from another copy" in n for n in plan.notes)
    assert plan.counts == whole.counts
    assert plan.ranges(4, 1) == whole.ranges(4, 1)
    fat2 = (geo.fat_pos(1), geo.fat_pos(1) + geo.fat_used)
    assert any(fat2[0] <= pos < fat2[1] for pos, _ in reader.reads)
    assert overlap([fat2], plan.ranges(1)) == geo.fat_used  # FAT 2 stands in: P1


@pytest.mark.parametrize("kind", list(FAT_KINDS))
def test_one_bad_fat_sector_costs_only_itself(images: dict[str, Path], kind: str) -> None:
    """A bad sector of FAT 1 is served from FAT 2 (FAT12 entries straddle sector ends)."""
    path = images[kind]
    geo = _geometry(path)
    whole, _ = planned(path)
    bad = geo.fat_pos(0) + geo.bps
    plan, _ = planned(path, bad=[(bad, bad + geo.bps)])
    assert plan.counts == whole.counts
    assert plan.ranges(4, 1) == whole.ranges(4, 1)


def test_fat_sector_bad_in_every_copy(images: dict[str, Path]) -> None:
    path = images["fat16"]
    geo = _geometry(path)
    whole, _ = planned(path)
    bad = [(geo.fat_pos(n), geo.fat_pos(n) + geo.bps) for n in range(2)]
    plan, _ = planned(path, bad=bad)
    assert any("unreadable in every copy" in n for n in plan.notes)
    assert plan.counts["fat:directories"] == whole.counts["fat:directories"]
    assert overlap(whole.ranges(1), plan.ranges(1)) == whole.size_of(1)


def _entry_pos(path: Path, short_name: bytes, attr: int = 0x10) -> int:
    """Image position of the directory entry with this 8.3 name (as mtools wrote it)."""
    data = path.read_bytes()
    pos = data.find(short_name.ljust(11) + bytes([attr]))
    assert pos >= 0 and pos % 32 == 0
    return pos


def test_directory_loop_is_bounded(images: dict[str, Path]) -> None:
    path = images["fat32"]
    data = path.read_bytes()
    outer = _entry_pos(path, b"LEVEL00")
    hi, lo = (struct.unpack_from("<H", data, outer + off)[0] for off in (20, 26))
    inner = _entry_pos(path, b"LEVEL05")
    patch = {inner + 20: struct.pack("<H", hi), inner + 26: struct.pack("<H", lo)}
    whole, _ = planned(path)
    plan, _ = planned(path, patch=patch)  # level05 points back up to level00
    assert any("reached twice" in n for n in plan.notes)
    lost = 12 - 6  # level06..level11, only reachable through the real level05
    assert plan.counts["fat:directories"] == whole.counts["fat:directories"] - lost
    assert plan.counts["fat:files"] == whole.counts["fat:files"] - lost - 1


def test_chain_cycle_is_bounded(images: dict[str, Path]) -> None:
    path = images["fat32"]
    geo = _geometry(path)
    entry = _entry_pos(path, b"BIG1    DAT", 0x20)
    data = path.read_bytes()
    first = struct.unpack_from("<H", data, entry + 20)[0] << 16
    first |= struct.unpack_from("<H", data, entry + 26)[0]
    loop = struct.pack("<I", first)  # its 10th cluster points back to its first
    patch = {geo.fat_pos(n) + (first + 9) * 4: loop for n in range(2)}
    plan, _ = planned(path, patch=patch)
    assert any("cycle" in n for n in plan.notes)
    start = geo.cluster_pos(first)
    assert overlap([(start, start + 10 * geo.cluster_size)], plan.ranges(4, 4)) > 0


# ------------------------------------------------------------------ damaged exFAT
def _exfat_any(images: dict[str, Path]) -> Path:
    return images.get("exfat", images["exfat-empty"])


def test_exfat_backup_region_when_main_unreadable(images: dict[str, Path]) -> None:
    path = _exfat_any(images)
    whole, _ = planned(path)
    plan, _ = planned(path, bad=[(0, 12 * 512)])
    assert plan.filesystems == whole.filesystems
    assert any("backup boot region" in n for n in plan.notes)
    assert plan.counts == whole.counts
    assert plan.ranges(4, 1) == whole.ranges(4, 1)
    assert overlap([(12 * 512, 24 * 512)], plan.ranges(0)) == 12 * 512


def test_exfat_backup_region_when_checksum_fails(images: dict[str, Path]) -> None:
    path = _exfat_any(images)
    whole, _ = planned(path)
    plan, _ = planned(path, patch={512 + 100: b"\x01"})  # an extended boot sector changed
    assert any("fails its checksum" in n for n in plan.notes)
    assert plan.counts == whole.counts
    assert plan.ranges(4, 1) == whole.ranges(4, 1)


def test_exfat_unchecked_boot_sector_when_both_regions_fail(images: dict[str, Path]) -> None:
    path = _exfat_any(images)
    whole, _ = planned(path)
    plan, _ = planned(path, patch={512 + 100: b"\x01", 13 * 512 + 100: b"\x01"})
    assert any("unchecked" in n for n in plan.notes)
    assert plan.counts == whole.counts


def test_exfat_corrupt_entry_set_is_skipped(images: dict[str, Path]) -> None:
    path = image(images, "exfat")
    data = path.read_bytes()
    name = "big0.dat".encode("utf-16-le")
    pos = data.find(name)
    assert pos > 0 and data[pos - pos % 32] == 0xC1
    whole, _ = planned(path)
    plan, _ = planned(path, patch={pos: b"X"})
    assert plan.counts["exfat:bad entry sets"] == 1
    assert plan.counts["exfat:files"] == whole.counts["exfat:files"] - 1


def test_exfat_not_fat() -> None:
    """An exFAT boot sector is not taken for FAT, nor a FAT one for exFAT."""
    assert fat.parse_boot(b"\xeb\x76\x90EXFAT   " + bytes(498) + b"\x55\xaa") is None
    assert exfat.parse_boot(bytes(510) + b"\x55\xaa") is None


# ------------------------------------------------------------------ 4 KiB sectors
@pytest.fixture(scope="module")
def images4k(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """FAT32 and (with a loop device) exFAT with 4 KiB logical sectors."""
    base = tmp_path_factory.mktemp("fat4k")
    tree = base / "tree"
    populate_tree(tree, nfiles=60, depth=3)
    out = {"fat32": base / "fat32.img"}
    subprocess.run(
        ["mkfs.vfat", "-C", "-F", "32", "-S", "4096", "-s", "1", str(out["fat32"]), "300000"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["mcopy", "-s", "-i", str(out["fat32"]), *map(str, tree.iterdir()), "::"], check=True
    )
    if can_log_reads():
        img = out["exfat"] = base / "exfat.img"
        with open(img, "wb") as fh:
            fh.truncate(64 * MiB)
        dev = subprocess.run(
            ["losetup", "-b", "4096", "-f", "--show", str(img)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        try:
            subprocess.run(["mkfs.exfat", dev], check=True, capture_output=True)
        finally:
            subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)
    return out


@pytest.mark.parametrize("kind", ["fat32", "exfat"])
def test_4k_sectors_and_their_backup(images4k: dict[str, Path], kind: str) -> None:
    if kind not in images4k:
        pytest.fail("needs root and losetup to make a 4 KiB-sector exFAT")
    path = images4k[kind]
    whole, _ = planned(path)
    assert_same_tree(whole, libfsfat_walk(path), name_of(kind))
    assert whole.notes == []
    region = 4096 if kind == "fat32" else 12 * 4096
    plan, reader = planned(path, bad=[(0, region)])
    assert plan.filesystems == whole.filesystems
    assert plan.counts == whole.counts
    assert plan.ranges(4, 1) == whole.ranges(4, 1)
    backup = 6 * 4096 if kind == "fat32" else 12 * 4096
    assert (backup, 512) in reader.reads


# ------------------------------------------------------------------ the FAT table alone
def _table(
    bits: int, entries: list[int], bad: frozenset[int] | set[int] = frozenset(), copies: int = 2
) -> fat.FatTable:
    """A FatTable of ``copies`` identical copies of ``entries``; the sectors (numbered across
    the copies) in ``bad`` are unreadable."""
    if bits == 12:
        raw = bytearray((len(entries) * 3 + 1) // 2)
        for n, v in enumerate(entries):
            at = n * 3 // 2
            word = int.from_bytes(raw[at : at + 2], "little")
            word = (word & 0x000F) | v << 4 if n & 1 else (word & 0xF000) | v
            raw[at : at + 2] = word.to_bytes(2, "little")
    else:
        width = 2 if bits == 16 else 4
        raw = bytearray(b"".join(v.to_bytes(width, "little") for v in entries))
    size = -(-len(raw) // 512) * 512
    image = bytes(raw.ljust(size, b"\0")) * copies

    def read(pos: int, n: int) -> bytes | None:
        if any(s * 512 < pos + n and pos < (s + 1) * 512 for s in bad):
            return None
        return image[pos : pos + n]

    vol = Volume(read, 0, len(image), Plan(len(image)))
    return fat.FatTable(
        read,
        [i * size for i in range(copies)],
        len(raw),
        bits,
        len(entries) - 2,
        512,
        fat.Notes(vol, "fat"),
    )


def test_fat12_entry_across_a_bad_sector_is_unreadable() -> None:
    entries = [0xFF8, 0xFFF] + [0xFFF] * 400
    table = _table(12, entries, bad={1, 3})  # sector 1 of both copies (each 2 sectors long)
    assert table.entry(340) == 0xFFF  # bytes 510-511
    assert table.entry(341) is None  # bytes 511-512 straddle into the bad sector
    assert table.entry(342) is None


@pytest.mark.parametrize("bits", [12, 16, 28, 32])  # 28: FAT32, 32: exFAT
def test_chains_end_on_cycles_free_entries_and_limits(bits: int) -> None:
    eoc = {12: 0xFFF, 16: 0xFFFF, 28: 0x0FFFFFFF, 32: 0xFFFFFFFF}[bits]
    entries = [0, eoc, 3, 4, 2, 6, 0, 8, eoc] + [0] * 10
    table = _table(bits, entries)
    assert table.chain(2, 100) == fat.Chain([2, 3, 4], "cycle")
    assert table.chain(5, 100) == fat.Chain([5, 6], "free")
    assert table.chain(7, 100) == fat.Chain([7, 8], "end")
    assert table.chain(7, 1) == fat.Chain([7], "limit")
    assert table.chain(1, 100) == fat.Chain([], "bad")


def test_exfat_probe_reads_one_sector_of_a_fat_volume(images: dict[str, Path]) -> None:
    reader = ImageReader(images["fat32"])
    assert not exfat.probe(Volume(reader, 0, reader.size, Plan(reader.size)))
    assert reader.reads == [(0, 512)]


def test_probes_reject_an_empty_volume() -> None:
    reads: list[tuple[int, int]] = []

    def read(pos: int, n: int) -> bytes:
        reads.append((pos, n))
        return bytes(n)

    vol = Volume(read, 0, 64 * MiB, Plan(64 * MiB))
    assert not fat.probe(vol) and not exfat.probe(vol)
    assert len(reads) <= 10 and all(n == 512 for _, n in reads)


# ------------------------------------------------------------------ partitioned disks
def _disk(
    tmp_path: Path, layout: str, size_mib: int, fs: list[Path]
) -> tuple[Path, list[tuple[int, int]]]:
    """A disk partitioned by sfdisk with the images ``fs`` in its partitions, in table order."""
    disk = tmp_path / "disk.img"
    parts = make_disk(disk, layout, size_mib * MiB)
    assert len(parts) == len(fs)
    for (start, _size), img in zip(parts, fs, strict=True):
        place(disk, img, start)
    return disk, parts


@pytest.mark.parametrize(
    "layout",
    [
        "label: dos\n,33M,6\n,,5\n,65M,c\n,33M,7\n",  # a primary, then two logical partitions
        "label: gpt\n,17M\n,65M\n,33M\n",
    ],
    ids=["mbr-logical", "gpt"],
)
def test_partitioned_disk(images: dict[str, Path], tmp_path: Path, layout: str) -> None:
    kinds = ["fat16" if "dos" in layout else "fat12", "fat32", "exfat"]
    paths = [images[k] for k in kinds[:2]] + [_exfat_any(images)]
    disk, parts = _disk(tmp_path, layout, 160, paths)
    plan, _ = planned(disk)
    assert plan.filesystems == [(s, n, name_of(k)) for (s, n), k in zip(parts, kinds, strict=True)]
    walks = [libfsfat_walk(p) for p in paths]
    assert plan.counts["fat:files"] == walks[0].files + walks[1].files
    assert plan.counts["fat:directories"] == walks[0].dirs + walks[1].dirs + 2
    assert plan.counts.get("exfat:files", 0) == walks[2].files
    for (start, _, _), walk in zip(plan.filesystems, walks, strict=True):
        shifted = [(s + start, e + start) for s, e in walk.extents]
        assert overlap(shifted, plan.ranges(4, 4)) == sum(e - s for s, e in walk.extents)


@fuse
@needs_fuse
def test_fsck_on_a_logical_partition(images: dict[str, Path], tmp_path: Path) -> None:
    disk, _ = _disk(tmp_path, "label: dos\n,,5\n,65M,c\n", 80, [images["fat32"]])
    plan, _ = planned(disk)
    ((start, size, name),) = plan.filesystems
    assert name == "fat"
    reads = read_logged(disk, ["fsck.vfat", "-n", "{dev}"], tmp_path, offset=start, size=size)
    assert all(start <= pos < start + size for pos, _ in reads)
    # through a block device the kernel reads whole 4 KiB pages
    assert coverage(reads, rounded(plan.ranges(3), 4096)) >= 0.99


def test_loop_range_is_read_only(tmp_path: Path) -> None:
    if not can_log_reads():
        pytest.fail("needs root and losetup")
    img = tmp_path / "x.img"
    img.write_bytes(bytes(range(256)) * 4096)
    with loop_range(img, 4096, 8192) as dev:
        with open(dev, "rb") as fh:
            assert fh.read() == img.read_bytes()[4096 : 4096 + 8192]
        ro = subprocess.run(["blockdev", "--getro", dev], capture_output=True, text=True)
        assert ro.stdout.strip() == "1"
