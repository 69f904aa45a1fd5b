"""The repair view: backups served in place of lost primaries.

The pure part (ddfs/live/repairview.py) is tested on real filesystem images made by mkntfs,
mkfs.vfat, mkfs.exfat and sfdisk, read through a reader that pretends some sectors are bad.
Then ``ddfs mount --repair-view`` over a ``ddfs simulate`` disk whose primary boot sectors are
bad: ntfs-3g mounts the NTFS volume read-only and reads its files, fsck.vfat -n passes on the
FAT32 volume, and nothing is written (the source is unchanged, OUTFILE holds no substitute).
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from ddfs.live.repairview import (
    RepairView,
    Substitution,
    find_substitutions,
    primary_gpt_header,
)
from engine.metadata import ntfs
from engine.metadata.partitions import Partition, read_partitions
from tests.fsimages import ImageReader, make_disk, place
from tests.mountproc import live_mount, status, wait_for
from tests.simdisk import simulated_disk
from tests.test_mount import write_testmap

MiB = 1 << 20
SECTOR = 512


def run(*argv: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)  # type: ignore[call-overload]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def served(path: Path, bad: list[tuple[int, int]], subs: list[Substitution]) -> bytes:
    """The image as the repair view serves it: bad ranges zeroed, then substitutions applied
    where they are in effect (primary bad, backup good)."""
    data = bytearray(path.read_bytes())
    for s, n in bad:
        data[s : s + n] = bytes(n)

    def finished(pos: int, size: int) -> bool:
        return not any(s < pos + size and pos < s + n for s, n in bad)

    view = RepairView(finished)
    view.candidates = subs
    out = bytearray(data)
    for sub in subs:
        if view.active(sub):
            src = sub.data or bytes(data[sub.backup : sub.backup + sub.size])
            out[sub.primary : sub.primary_end] = src
    return bytes(out)


# ------------------------------------------------------------------ images
def ntfs_image(path: Path, size: int = 16 * MiB, files: dict[str, bytes] | None = None) -> None:
    with open(path, "wb") as fh:
        fh.truncate(size)
    res = run("mkntfs", "-F", "-Q", "-q", str(path))
    assert res.returncode == 0, res.stderr
    if files:
        mnt = path.parent / "ntfs-fill"
        mnt.mkdir(exist_ok=True)
        res = run("ntfs-3g", str(path), str(mnt))
        assert res.returncode == 0, res.stderr
        try:
            for name, data in files.items():
                (mnt / name).write_bytes(data)
        finally:
            assert run("umount", str(mnt)).returncode == 0


def fat32_image(path: Path, size: int = 40 * MiB, files: dict[str, bytes] | None = None) -> None:
    with open(path, "wb") as fh:
        fh.truncate(size)
    res = run("mkfs.vfat", "-F", "32", "-s", "1", str(path))
    assert res.returncode == 0, res.stderr
    for name, data in (files or {}).items():
        src = path.parent / name
        src.write_bytes(data)
        assert run("mcopy", "-i", str(path), str(src), f"::{name}").returncode == 0


def reader_with_bad(path: Path, bad: list[tuple[int, int]]) -> Callable[[int, int], bytes | None]:
    return ImageReader(path, bad=[(s, s + n) for s, n in bad])


# ------------------------------------------------------------------ the pure part
def test_ntfs_boot_sector_and_mft_records(tmp_path: Path) -> None:
    img = tmp_path / "ntfs.img"
    ntfs_image(img)
    boot = ntfs.parse_boot(img.read_bytes()[:SECTOR])
    assert boot is not None
    mft = boot.mft_lcn * boot.cluster
    bad = [(0, SECTOR), (mft, boot.record_size)]
    subs = find_substitutions(reader_with_bad(img, bad), img.stat().st_size)
    by_what = {s.what: s for s in subs}
    assert by_what["disk: ntfs boot sector"].backup == img.stat().st_size - SECTOR
    rec0 = by_what["disk: ntfs MFT record 0"]
    assert (rec0.primary, rec0.size) == (mft, boot.record_size)
    assert rec0.backup == boot.mirr_lcn * boot.cluster
    assert len([s for s in subs if "MFT record" in s.what]) == 4
    # what is served is the intact image: the backups are copies of the primaries
    view = served(img, bad, subs)
    intact = img.read_bytes()
    assert view[:SECTOR] == intact[:SECTOR]
    assert view[mft : mft + boot.record_size] == intact[mft : mft + boot.record_size]


def test_fat32_sectors_from_the_backup(tmp_path: Path) -> None:
    img = tmp_path / "fat.img"
    fat32_image(img)
    bad = [(0, SECTOR)]
    subs = find_substitutions(reader_with_bad(img, bad), img.stat().st_size)
    assert [(s.primary, s.backup, s.size) for s in subs] == [
        (i * SECTOR, (6 + i) * SECTOR, SECTOR) for i in range(3)
    ]
    broken = tmp_path / "broken.img"
    data = bytearray(img.read_bytes())
    data[:SECTOR] = bytes(SECTOR)
    broken.write_bytes(data)
    assert run("fsck.vfat", "-n", str(broken)).returncode != 0  # the tool gives up...
    repaired = tmp_path / "served.img"
    repaired.write_bytes(served(img, bad, subs))
    res = run("fsck.vfat", "-n", str(repaired))  # ...and passes on what the view serves
    assert res.returncode == 0, res.stdout + res.stderr


def test_exfat_boot_region_from_the_backup(tmp_path: Path) -> None:
    img = tmp_path / "exfat.img"
    with open(img, "wb") as fh:
        fh.truncate(16 * MiB)
    assert run("mkfs.exfat", str(img)).returncode == 0
    bad = [(0, 12 * SECTOR)]
    subs = find_substitutions(reader_with_bad(img, bad), img.stat().st_size)
    assert [(s.primary, s.backup) for s in subs] == [
        (i * SECTOR, (12 + i) * SECTOR) for i in range(12)
    ]
    repaired = tmp_path / "served.img"
    repaired.write_bytes(served(img, bad, subs))
    res = run("fsck.exfat", "-n", str(repaired))
    assert res.returncode == 0, res.stdout + res.stderr


def test_gpt_header_rewritten_as_a_primary(tmp_path: Path) -> None:
    img = tmp_path / "gpt.img"
    parts = make_disk(img, "label: gpt\n,8M,L\n,,L\n", 32 * MiB)
    size = img.stat().st_size
    bad = [(SECTOR, 33 * SECTOR)]  # the primary header and the whole entry array
    subs = find_substitutions(reader_with_bad(img, bad), size)
    header, entries = subs[0], subs[1]
    assert header.what == "gpt header" and header.backup == size - SECTOR
    assert entries.primary == 2 * SECTOR and entries.size == 32 * SECTOR
    hdr = header.data
    assert hdr is not None
    my_lba, alt_lba = struct.unpack_from("<QQ", hdr, 24)
    assert (my_lba, alt_lba) == (1, size // SECTOR - 1)
    assert struct.unpack_from("<Q", hdr, 72)[0] == 2
    hsize, crc = struct.unpack_from("<II", hdr, 12)
    assert zlib.crc32(hdr[:16] + bytes(4) + hdr[20:hsize]) == crc
    # byte for byte the primary that sfdisk wrote (it writes both from the same table)
    assert hdr == img.read_bytes()[SECTOR : 2 * SECTOR]
    repaired = tmp_path / "served.img"
    repaired.write_bytes(served(img, bad, subs))
    res = run("sfdisk", "--json", str(repaired))
    assert res.returncode == 0 and "corrupt" not in res.stderr, res.stderr
    found = read_partitions(lambda p, n: repaired.read_bytes()[p : p + n], size)
    assert [(p.start, p.size) for p in found] == parts


def test_primary_gpt_header_round_trip() -> None:
    hdr = bytearray(SECTOR)
    hdr[:8] = b"EFI PART"
    struct.pack_into("<IIII", hdr, 8, 0x10000, 92, 0, 0)
    struct.pack_into("<QQQQ", hdr, 24, 999, 1, 34, 966)
    struct.pack_into("<QIII", hdr, 72, 967, 128, 128, 0xABCD)
    out = primary_gpt_header(bytes(hdr), 999)
    assert struct.unpack_from("<QQ", out, 24) == (1, 999)
    assert struct.unpack_from("<Q", out, 72)[0] == 2
    assert out[36:72] == hdr[36:72] and out[80:92] == hdr[80:92]


def test_split_serves_only_lost_primaries_with_rescued_backups() -> None:
    bad: set[int] = {0, 2, 3}  # sectors

    def finished(pos: int, size: int) -> bool:
        return not any(pos // SECTOR <= s < -(-(pos + size) // SECTOR) for s in bad)

    view = RepairView(finished)
    view.candidates = [
        Substitution("a", 0, SECTOR, 6 * SECTOR),  # primary bad, backup good: serves
        Substitution("b", SECTOR, SECTOR, 7 * SECTOR),  # primary good: standby
        Substitution("c", 2 * SECTOR, SECTOR, 3 * SECTOR),  # backup bad: waiting
    ]
    pieces = view.split(0, 4 * SECTOR)
    assert [(p, n, s.what if s else None) for p, n, s in pieces] == [
        (0, SECTOR, "a"),
        (SECTOR, 3 * SECTOR, None),
    ]
    assert view.split(100, 100) == [(100, 100, view.candidates[0])]
    states = [s["state"] for s in view.status()["substitutions"]]  # type: ignore[index]
    assert [st.split(":")[0] for st in states] == ["serving", "standby", "waiting"]
    assert view.counts() == (1, 3)
    bad.clear()  # the primary got rescued after all: it is served again
    assert view.split(0, SECTOR) == [(0, SECTOR, None)]
    assert view.counts() == (0, 3)


def test_nothing_found_on_healthy_or_unknown_data(tmp_path: Path) -> None:
    img = tmp_path / "random.img"
    img.write_bytes(random.Random(5).randbytes(4 * MiB))
    assert find_substitutions(reader_with_bad(img, []), 4 * MiB) == []


# ------------------------------------------------------------------ live mounts
def serve_with_bad(tmp_path: Path, image: Path, bad: list[tuple[int, int]], tool: Callable) -> dict:  # type: ignore[type-arg]
    """Mount ``image`` with ``bad`` sectors through ``--repair-view``; run ``tool(mnt)`` once
    a substitution serves; check nothing was written; return the status seen by the tool."""
    size = image.stat().st_size
    before = sha256(image)
    write_testmap(tmp_path / "bad.map", size, bad)
    sim, mnt = tmp_path / "sim", tmp_path / "mnt"
    sim.mkdir()
    mnt.mkdir()
    out = tmp_path / "out"
    with (
        simulated_disk(image, sim, tmp_path / "bad.map") as dev,
        live_mount(dev, out, tmp_path / "map", mnt, "-q", "--repair-view"),
    ):

        def serving() -> bool:
            subs = status(mnt).get("repair_view", {}).get("substitutions", [])
            return any(s["state"] == "serving" for s in subs)

        wait_for(serving, 20, "no substitution in effect")
        tool(mnt)
        seen = status(mnt)
        wait_for(lambda: status(mnt)["finished"], 60, "the rescue did not end")  # (see below)
    assert sha256(image) == before
    expected = bytearray(image.read_bytes())
    for s, n in bad:
        expected[s : s + n] = bytes(n)
    assert out.read_bytes() == expected  # the rescue as usual: no substitute written
    return seen


@pytest.mark.fuse
def test_ntfs_mounts_with_ntfs3g_through_the_view(tmp_path: Path) -> None:
    img = tmp_path / "ntfs.img"
    files = {f"file{i}.bin": random.Random(i).randbytes(5000 + 7000 * i) for i in range(5)}
    ntfs_image(img, files=files)
    boot = ntfs.parse_boot(img.read_bytes()[:SECTOR])
    assert boot is not None
    mft = boot.mft_lcn * boot.cluster
    bad = [(0, SECTOR), (mft, boot.record_size)]
    fsmnt = tmp_path / "fs"
    fsmnt.mkdir()

    def tool(mnt: Path) -> None:
        res = run("ntfs-3g", "-o", "ro", str(mnt / "image"), str(fsmnt))
        assert res.returncode == 0, res.stderr
        try:
            for name, data in files.items():
                assert (fsmnt / name).read_bytes() == data, name
        finally:
            assert run("umount", str(fsmnt)).returncode == 0

    seen = serve_with_bad(tmp_path, img, bad, tool)
    subs = {s["what"]: s for s in seen["repair_view"]["substitutions"]}
    boot_sub = subs["disk: ntfs boot sector"]
    assert boot_sub["state"] == "serving" and boot_sub["reads_served"] > 0
    assert boot_sub["backup"] == {"pos": img.stat().st_size - SECTOR, "size": SECTOR}
    assert subs["disk: ntfs MFT record 0"]["state"] == "serving"
    assert subs["disk: ntfs MFT record 1"]["state"].startswith("standby")


@pytest.mark.fuse
def test_fat32_passes_fsck_through_the_view(tmp_path: Path) -> None:
    img = tmp_path / "fat.img"
    files = {f"F{i}.BIN": random.Random(i).randbytes(3000 * (i + 1)) for i in range(4)}
    fat32_image(img, files=files)

    def tool(mnt: Path) -> None:
        res = run("fsck.vfat", "-n", str(mnt / "image"))
        assert res.returncode == 0, res.stdout + res.stderr
        for name, data in files.items():
            res = subprocess.run(
                ["mtype", "-i", str(mnt / "image"), f"::{name}"], capture_output=True, timeout=60
            )
            assert res.returncode == 0 and res.stdout == data, name

    seen = serve_with_bad(tmp_path, img, [(0, SECTOR)], tool)
    subs = {s["what"]: s for s in seen["repair_view"]["substitutions"]}
    assert subs["disk: fat32 boot sector"]["state"] == "serving"
    assert subs["disk: fat32 boot sector"]["backup"]["pos"] == 6 * SECTOR
    assert subs["disk: fat32 FSInfo sector"]["state"].startswith("standby")


def test_no_bare_ntfs_guessed_from_the_last_partition(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    parts = make_disk(disk, "label: dos\n2048,,7\n", 16 * MiB)
    vol = tmp_path / "vol.img"
    ntfs_image(vol, parts[0][1])
    place(disk, vol, parts[0][0])
    size = disk.stat().st_size
    reader = reader_with_bad(disk, [(0, SECTOR)])  # the MBR is lost: no partitions known
    assert not [s for s in find_substitutions(reader, size) if "ntfs" in s.what]
    known = [Partition(1, parts[0][0], parts[0][1], "mbr", "07")]
    subs = find_substitutions(reader_with_bad(disk, [(parts[0][0], SECTOR)]), size, known)
    boot = [s for s in subs if s.what == "p1: ntfs boot sector"]
    assert boot and boot[0].backup == size - SECTOR


@pytest.mark.fuse
def test_gpt_primary_served_from_the_backup(tmp_path: Path) -> None:
    disk = tmp_path / "gpt.img"
    parts = make_disk(disk, "label: gpt\n,8M,L\n,,L\n", 32 * MiB)

    def tool(mnt: Path) -> None:
        res = run("sfdisk", "--json", str(mnt / "image"))
        assert res.returncode == 0 and "corrupt" not in res.stderr, res.stderr
        found = json.loads(res.stdout)["partitiontable"]["partitions"]
        assert [(p["start"] * SECTOR, p["size"] * SECTOR) for p in found] == parts
        wait_for(lambda: (mnt / "p2").exists(), 20, "p2 did not appear")

    seen = serve_with_bad(tmp_path, disk, [(SECTOR, 33 * SECTOR)], tool)
    subs = {s["what"]: s for s in seen["repair_view"]["substitutions"]}
    assert subs["gpt header"]["state"] == "serving" and subs["gpt header"]["rewritten"]
    assert subs["gpt partition entries"]["state"] == "serving"
