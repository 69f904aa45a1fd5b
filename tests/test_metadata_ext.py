"""The ext2/3/4 planner against e2fsck's and the kernel's reads, and an independent reader."""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.metadata.planner import plan_disk
from engine.metadata.volume import Plan
from tests.simdisk import loop_device, simulated_disk

MiB = 1 << 20


def fill(root: Path, seed: int = 1) -> tuple[int, int]:
    """Many files, nested directories and one big directory; returns (dirs, files)."""
    rng = random.Random(seed)
    dirs = files = 0
    for d in range(16):
        path = root.joinpath(f"d{d}", *(f"n{i}" for i in range(d % 5)))
        path.mkdir(parents=True, exist_ok=True)
        for i in range(20):
            (path / f"f{i}").write_bytes(rng.randbytes(rng.randrange(0, 70_000)))
    (root / "big").mkdir()
    for i in range(400):
        (root / "big" / f"entry-with-a-long-name-{i}").write_text("x" * i)
    for _, dnames, fnames in os.walk(root):
        dirs += len(dnames)
        files += len(fnames)
    return dirs, files


def make_fs(tmp_path: Path, mkfs: str, size: int = 64 * MiB) -> tuple[Path, int, int]:
    files = tmp_path / "files"
    files.mkdir()
    dirs, nfiles = fill(files)
    image = tmp_path / "fs.img"
    subprocess.run([mkfs, "-q", "-F", "-d", str(files), str(image), f"{size // 1024}k"], check=True)
    return image, dirs, nfiles


def reader(data: bytes, bad: list[tuple[int, int]] = ()) -> Callable[[int, int], bytes | None]:
    def read(pos: int, size: int) -> bytes | None:
        if any(pos < s + n and s < pos + size for s, n in bad):
            return None
        return data[pos : pos + size]

    return read


def coverage(reads: list[tuple[int, int]], ranges: list[tuple[int, int]]) -> float:
    """The share of the bytes read (each byte once) that lie inside ``ranges``."""
    spans = sorted(reads)
    merged: list[list[int]] = []
    for pos, size in spans:
        if merged and pos <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], pos + size)
        else:
            merged.append([pos, pos + size])
    total = inside = 0
    for s, e in merged:
        total += e - s
        for a, b in ranges:
            inside += max(0, min(e, b) - max(s, a))
    return inside / total if total else 1.0


def rounded(ranges: list[tuple[int, int]], unit: int) -> list[tuple[int, int]]:
    return [(s - s % unit, -(-e // unit) * unit) for s, e in ranges]


def logged_reads(tmp_path: Path, image: Path, run: Callable[[str], None]) -> list[tuple[int, int]]:
    """Serve ``image`` through a read-logging FUSE file and run ``run(disk)`` on it."""
    log = tmp_path / "reads.log"
    mnt = tmp_path / "sim"
    mnt.mkdir(exist_ok=True)
    with simulated_disk(image, mnt, log_reads=str(log)) as disk:
        run(disk)
    return [(int(p), int(s)) for p, s, _ in (ln.split() for ln in log.read_text().splitlines())]


def counts(plan: Plan) -> tuple[int, int]:
    return plan.counts.get("ext:directories", 0), plan.counts.get("ext:files", 0)


@pytest.mark.fuse
@pytest.mark.parametrize("mkfs", ["mkfs.ext4", "mkfs.ext3", "mkfs.ext2"])
def test_e2fsck_reads_inside_plan(tmp_path: Path, mkfs: str) -> None:
    image, dirs, files = make_fs(tmp_path, mkfs)
    data = image.read_bytes()
    plan = plan_disk(reader(data), len(data))
    assert plan.filesystems == [(0, len(data), "ext")]
    assert counts(plan) == (dirs + 2, files)  # + the root and lost+found
    reads = logged_reads(
        tmp_path,
        image,
        lambda disk: subprocess.run(["e2fsck", "-fn", disk], check=True, capture_output=True),
    )
    assert coverage(reads, plan.ranges(3)) >= 0.99
    # without uninit_bg (ext2, ext3) whole inode tables count: 6.25 % of this small-type image
    # (1 KiB blocks), plus the bitmaps rounded out to 4 KiB pages
    assert plan.size_of(2) < (0.05 if mkfs == "mkfs.ext4" else 0.12) * len(data)


@pytest.mark.fuse
def test_kernel_mount_reads_inside_plan(tmp_path: Path) -> None:
    image, _, _ = make_fs(tmp_path, "mkfs.ext4")
    data = image.read_bytes()
    plan = plan_disk(reader(data), len(data))
    fsmnt = tmp_path / "fs"
    fsmnt.mkdir()

    def walk(disk: str) -> None:
        with loop_device(disk) as dev:
            subprocess.run(["blockdev", "--setra", "0", dev], check=True)
            # -t: no libblkid probing of every known signature (RAID labels at the disk end)
            subprocess.run(["mount", "-t", "ext4", "-o", "ro,noload", dev, str(fsmnt)], check=True)
            try:
                subprocess.run(["ls", "-lR", str(fsmnt)], check=True, capture_output=True)
            finally:
                subprocess.run(["umount", str(fsmnt)], check=True)

    reads = logged_reads(tmp_path, image, walk)
    # the kernel reads whole 4 KiB pages of 1 KiB blocks: compare at that granularity
    assert coverage(reads, rounded(plan.ranges(3), 4096)) >= 0.99
    assert plan.size_of(2) < 0.05 * len(data)


def test_counts_match_libfsext(tmp_path: Path) -> None:
    import pyfsext

    image, _, _ = make_fs(tmp_path, "mkfs.ext4")
    data = image.read_bytes()
    plan = plan_disk(reader(data), len(data))
    vol = pyfsext.volume()
    with open(image, "rb") as fh:
        vol.open_file_object(fh)
        dirs = files = 0
        stack = [vol.get_root_directory()]
        while stack:
            entry = stack.pop()
            for i in range(entry.number_of_sub_file_entries):
                sub = entry.get_sub_file_entry(i)
                if sub.name in (".", ".."):
                    continue
                if sub.file_mode & 0xF000 == 0x4000:
                    dirs += 1
                    stack.append(sub)
                elif sub.file_mode & 0xF000 == 0x8000:
                    files += 1
        vol.close()
    assert counts(plan) == (dirs + 1, files)  # + the root


@pytest.mark.parametrize("damage", ["superblock", "gdt"])
def test_backups_when_primaries_are_lost(tmp_path: Path, damage: str) -> None:
    image, dirs, files = make_fs(tmp_path, "mkfs.ext4")
    data = image.read_bytes()
    bad = [(1024, 1024)] if damage == "superblock" else [(2048, 2048)]
    plan = plan_disk(reader(data, bad), len(data))
    assert counts(plan) == (dirs + 2, files)
    assert any("backup" in n or "copy" in n for n in plan.notes), plan.notes
    whole = plan_disk(reader(data), len(data))
    assert plan.size_of(2) >= whole.size_of(2)  # backups: whole inode tables


def test_partitioned_disk(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    dirs, nfiles = fill(files)
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as fh:
        fh.truncate(96 * MiB)
    subprocess.run(
        ["sfdisk", "-q", str(disk)],
        input="label: dos\n,8M,c\n,,5\n,70M,83\n",
        text=True,
        check=True,
    )
    start = 9 * MiB + 1024 * 512 * 2  # the logical partition: sfdisk leaves 1 MiB after the EBR
    layout = subprocess.run(
        ["sfdisk", "-J", str(disk)], capture_output=True, text=True, check=True
    ).stdout
    import json

    part = next(
        p for p in json.loads(layout)["partitiontable"]["partitions"] if p["node"].endswith("5")
    )
    start = part["start"] * 512
    subprocess.run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-d",
            str(files),
            "-E",
            f"offset={start}",
            str(disk),
            f"{part['size'] // 2}k",
        ],
        check=True,
    )
    data = disk.read_bytes()
    plan = plan_disk(reader(data), len(data))
    assert (start, part["size"] * 512, "ext") in plan.filesystems
    assert counts(plan) == (dirs + 2, nfiles)


def test_one_bad_inode_table_sector_costs_only_its_inodes(tmp_path: Path) -> None:
    """Issue 16, item 1: one bad 1 KiB sector in group 0's inode table. Before, the whole
    64 KiB piece of the table around it was skipped, and with it every file in it (the used
    data tier went to 0 B). Now the piece is read again block by block and sector by sector:
    only the inodes in the bad sector are lost, and the note says where."""
    image, _dirs, files = make_fs(tmp_path, "mkfs.ext4")
    data = image.read_bytes()
    whole = plan_disk(reader(data), len(data))
    table = next(a.start for a in whole.areas if a.what == "ext inode table 0")  # page-aligned
    bad = [(table + 8192, 1024)]  # a few inodes well past the root and the special inodes
    plan = plan_disk(reader(data, bad), len(data))
    lost = whole.counts["ext:files"] - plan.counts["ext:files"]
    assert 0 <= lost <= 1024 // 256
    assert plan.size_of(4, 4) >= 0.9 * whole.size_of(4, 4) > 0
    lost_notes = [n for n in plan.notes if "inode table of group 0 unreadable at" in n]
    assert 1 <= len(lost_notes) <= 2, plan.notes  # the bad sector's two 512-byte halves
    assert plan.counts["ext:files"] >= files - 4


def test_a_failing_module_is_a_note_and_engine_errors_go_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16, item 5: the planner printed tracebacks (``probe of ext failed ...
    WriteError``) and went on. A module's own failure is a note now, never a traceback; what
    the engine raises through the reader (a write error, a signal) ends the planning."""
    from engine.errors import WriteError
    from engine.metadata import ext

    image, _dirs, _files = make_fs(tmp_path, "mkfs.ext4")
    data = image.read_bytes()

    def broken(vol: object) -> bool:
        raise ValueError("a parser's bug")

    monkeypatch.setattr(ext, "probe", broken)
    plan = plan_disk(reader(data), len(data))
    assert "disk: the ext probe failed: ValueError: a parser's bug" in plan.notes

    def write_error(vol: object) -> bool:
        raise WriteError("out: Write error: No space left on device")

    monkeypatch.setattr(ext, "probe", write_error)
    with pytest.raises(WriteError):
        plan_disk(reader(data), len(data))
