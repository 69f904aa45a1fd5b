"""The NTFS planner against ntfsfix's, ntfsinfo's and ntfs-3g's reads, and against libfsntfs.

One image is built per module with mkfs.ntfs and filled through an ntfs-3g mount: the tree of
:func:`tests.fsimages.populate_tree` (a crowded directory, deep nesting, big files), a named
stream, and a file fragmented into the holes of a full volume, so that it needs an
$ATTRIBUTE_LIST and extension records (the MFT itself ends up in several extents too).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from engine.metadata import ntfs
from engine.metadata.planner import plan_disk
from engine.metadata.volume import P4, Plan, Volume
from tests.fsimages import (
    ImageReader,
    coverage,
    make_disk,
    outside,
    place,
    populate_tree,
    read_logged,
)
from tests.simdisk import have_fuse

MiB = 1 << 20
HOLE = 8192
F = TypeVar("F", bound=Callable[..., None])


def needs_ntfs3g(test: F) -> F:
    """Mark a test that builds images through ntfs-3g (a FUSE mount)."""
    usable = shutil.which("mkfs.ntfs") and shutil.which("ntfs-3g") and have_fuse()
    assert usable, "needs ntfs-3g (mkfs.ntfs) and FUSE: run `make test`"
    return pytest.mark.fuse(test)  # type: ignore[no-any-return]


# ------------------------------------------------------------------ images
def mkntfs(path: Path, size: int, *extra: str) -> None:
    with open(path, "wb") as fh:
        fh.truncate(size)
    subprocess.run(["mkfs.ntfs", "-F", "-Q", *extra, str(path)], check=True, capture_output=True)


def mounted_rw(image: Path, mnt: Path, fill: Callable[[Path], None]) -> None:
    """Mount ``image`` with ntfs-3g, run ``fill(mnt)``, unmount (also on failure)."""
    mnt.mkdir(exist_ok=True)
    subprocess.run(["ntfs-3g", str(image), str(mnt)], check=True, timeout=30)
    try:
        fill(mnt)
    finally:
        unmount(mnt)


def unmount(mnt: Path) -> None:
    """Unmount an ntfs-3g mount (lazily if it is busy); ntfs-3g writes back before exiting."""
    done = subprocess.run(["umount", str(mnt)], capture_output=True, timeout=60)
    if done.returncode:
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True, timeout=60)
        raise RuntimeError(f"umount {mnt}: {done.stderr.decode(errors='replace')}")


def fill_up(path: Path) -> None:
    """Write ``path`` until the volume is full."""
    with open(path, "wb", buffering=0) as fh:
        for chunk in (MiB, 4096):
            try:
                while fh.write(bytes(chunk)):
                    pass
            except OSError:
                pass


def populate(root: Path) -> None:
    populate_tree(root, nfiles=600)
    os.setxattr(root / "media" / "big0.dat", "user.named", os.urandom(9000))  # a named stream
    holes = root / "holes"
    holes.mkdir()
    for i in range(600):
        (holes / f"h{i}").write_bytes(os.urandom(HOLE))
    fill_up(root / "ballast")
    for i in range(0, 600, 2):
        (holes / f"h{i}").unlink()
    with open(root / "fragmented", "wb") as fh:  # lands in the 300 holes: an attribute list
        for _ in range(290):
            fh.write(os.urandom(HOLE))
    (root / "ballast").unlink()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("ntfs")
    path = work / "ntfs.img"
    mkntfs(path, 64 * MiB)
    mounted_rw(path, work / "mnt", populate)
    return path


# ------------------------------------------------------------------ helpers
def plan_of(path: Path, bad: Sequence[tuple[int, int]] = (), **kw: Any) -> tuple[Plan, ImageReader]:
    """Probe and plan the bare volume ``path``; ``bad`` as ``(pos, size)``."""
    reader = ImageReader(path, [(p, p + n) for p, n in bad], **kw)
    plan = Plan(reader.size)
    vol = Volume(reader, 0, reader.size, plan)
    assert ntfs.probe(vol)
    ntfs.plan(vol)
    return plan, reader


def counts(plan: Plan) -> tuple[int, int, int]:
    c = plan.counts
    return c.get("ntfs:records", 0), c.get("ntfs:directories", 0), c.get("ntfs:files", 0)


def libfsntfs_entries(path: Path) -> Iterator[Any]:
    """The allocated file entries of ``path`` as libfsntfs sees them (valid while iterating)."""
    import pyfsntfs

    vol = pyfsntfs.volume()
    with open(path, "rb") as fh:
        vol.open_file_object(fh)
        try:
            for i in range(vol.number_of_file_entries):
                entry = vol.get_file_entry(i)
                if entry.is_allocated():
                    yield entry
        finally:
            vol.close()


def libfsntfs_counts(path: Path) -> tuple[int, int, int]:
    """(in-use records, directories, files) by libfsntfs: a file is a non-directory base record."""
    records = dirs = files = 0
    for entry in libfsntfs_entries(path):
        records += 1
        if entry.base_record_file_reference:  # an extension record
            continue
        if entry.has_directory_entries_index():
            dirs += 1
        else:
            files += 1
    return records, dirs, files


def boot_of(path: Path) -> ntfs.Boot:
    with open(path, "rb") as fh:
        boot = ntfs.parse_boot(fh.read(512))
    assert boot is not None
    return boot


# ------------------------------------------------------------------ the whole walk
@needs_ntfs3g
def test_counts_match_libfsntfs(image: Path) -> None:
    plan, reader = plan_of(image)
    assert counts(plan) == libfsntfs_counts(image)
    assert plan.counts["ntfs:directories"] >= 20 and plan.counts["ntfs:files"] >= 900
    assert plan.counts["ntfs:index_blocks"] > 10 and "ntfs:bad_index_blocks" not in plan.counts
    assert plan.notes == []
    assert reader.duplicates() == []  # nothing is read twice (probe's boot sector included)
    # the planner reads only what it plans, in small reads
    assert coverage(reader.reads, plan.ranges(2)) == 1.0
    assert max(size for _, size in reader.reads) <= ntfs.CHUNK


@needs_ntfs3g
def test_fragmented_file_has_an_attribute_list(image: Path) -> None:
    """The fragmented file's extension records are walked: all its clusters are planned."""
    plan, _ = plan_of(image)
    extents = [
        [e.get_extent(i)[:2] for i in range(e.number_of_extents)]
        for e in libfsntfs_entries(image)
        if e.number_of_extents > 100
    ]
    assert extents, "the test image lost its fragmented file"
    assert coverage(extents[0], plan.ranges(P4, P4)) == 1.0


@needs_ntfs3g
def test_file_streams_are_planned_as_used_data(image: Path) -> None:
    """Every extent libfsntfs gives for a user file's streams (unnamed and named) is in P4."""
    plan, _ = plan_of(image)
    p4 = plan.ranges(P4, P4)
    wanted: list[tuple[int, int]] = []
    for entry in libfsntfs_entries(image):
        if entry.file_reference & 0xFFFFFFFFFFFF < 64 or entry.has_directory_entries_index():
            continue  # system files (mkntfs reserves records up to 63)
        streams = [entry] + [
            entry.get_alternate_data_stream(i)
            for i in range(entry.number_of_alternate_data_streams)
        ]
        for stream in streams:
            for i in range(stream.number_of_extents):
                off, size, _flags = stream.get_extent(i)
                wanted.append((off, size))
    assert len(wanted) > 300
    assert coverage(wanted, p4) == 1.0


@needs_ntfs3g
def test_tiers(image: Path) -> None:
    plan, reader = plan_of(image)
    boot = boot_of(image)
    p0 = plan.ranges(0)
    assert coverage([(0, boot.bps), (reader.size - boot.bps, boot.bps)], p0) == 1.0
    assert plan.size_of(0) <= 2 * 4096
    mft = boot.mft_lcn * boot.cluster
    assert coverage([(mft, 24 * boot.record_size)], plan.ranges(1)) == 1.0
    assert coverage([(boot.mirr_lcn * boot.cluster, 4 * boot.record_size)], plan.ranges(3)) == 1
    whats = {a.what for a in plan.areas}
    for what in ("$Bitmap", "$MFT $BITMAP", "$UpCase", "$AttrDef", "$Secure:$SDS",
                 "$LogFile restart pages", "$LogFile", "$MFTMirr", "in-use MFT records",
                 "root $INDEX_ALLOCATION", "$INDEX_ALLOCATION", "$ATTRIBUTE_LIST", "file data",
                 "file stream"):  # fmt: skip
        assert f"ntfs {what}" in whats, what
    assert plan.size_of(2) < 0.05 * reader.size
    assert plan.size_of(1) < 0.002 * reader.size


@needs_ntfs3g
@pytest.mark.parametrize(
    "options", ["-c 512", "-c 65536", "-s 4096", "-s 4096 -c 8192"], ids=str.strip
)
def test_geometries(tmp_path: Path, options: str) -> None:
    """Records spanning clusters, 64 KiB clusters, 4 KiB sectors and records; the backup boot
    sector is the volume's last sector whatever its size."""
    path = tmp_path / "vol.img"
    mkntfs(path, 40 * MiB, *options.split())
    mounted_rw(path, tmp_path / "mnt", lambda root: populate_tree(root, nfiles=150, big=(70000,)))
    plan, reader = plan_of(path)
    assert counts(plan) == libfsntfs_counts(path)
    assert plan.notes == [] and reader.duplicates() == []
    bps = boot_of(path).bps
    lost, _ = plan_of(path, bad=[(0, bps)])
    assert counts(lost) == counts(plan) and plan.ranges(4) == lost.ranges(4)
    assert any("backup boot sector" in n for n in lost.notes)


# ------------------------------------------------------------------ what the tools read
def ntfs3g_walk(workdir: Path) -> Callable[[str], None]:
    def walk(disk: str) -> None:
        fs = workdir / "fs"
        fs.mkdir(exist_ok=True)
        subprocess.run(["ntfs-3g", "-o", "ro", disk, str(fs)], check=True, timeout=30)
        try:
            subprocess.run(["find", str(fs)], check=True, capture_output=True, timeout=60)
            subprocess.run(["ls", "-lR", str(fs)], check=True, capture_output=True, timeout=60)
        finally:
            unmount(fs)

    return walk


@needs_ntfs3g
@pytest.mark.parametrize("tool", ["ntfsfix -n", "ntfsinfo -m", "ntfs-3g ro + find + ls -lR"])
def test_tool_reads_inside_plan(image: Path, tmp_path: Path, tool: str) -> None:
    plan, reader = plan_of(image)
    run = ntfs3g_walk(tmp_path) if tool.startswith("ntfs-3g") else [*tool.split(), "{dev}"]
    reads = read_logged(image, run, tmp_path)
    assert reads
    share = coverage(reads, plan.ranges(3))
    assert share >= 0.99, outside(reads, plan.ranges(3))[:20]
    assert plan.size_of(2) < 0.05 * reader.size


# ------------------------------------------------------------------ damaged primaries
@needs_ntfs3g
@pytest.mark.parametrize("how", ["unreadable", "zeroed"])
def test_boot_sector_lost_backup_used(image: Path, how: str) -> None:
    whole, _ = plan_of(image)
    if how == "unreadable":
        plan, _ = plan_of(image, bad=[(0, 512)])
    else:
        plan, _ = plan_of(image, patch={0: bytes(512)})
    assert any("backup boot sector" in n for n in plan.notes), plan.notes
    assert counts(plan) == counts(whole)
    assert plan.ranges(4) == whole.ranges(4)


@needs_ntfs3g
@pytest.mark.parametrize("how", ["unreadable", "zeroed", "torn"])
def test_mft_record_zero_lost_mirror_used(image: Path, how: str) -> None:
    whole, _ = plan_of(image)
    boot = boot_of(image)
    mft = boot.mft_lcn * boot.cluster
    if how == "unreadable":
        plan, reader = plan_of(image, bad=[(mft, boot.record_size)])
    elif how == "zeroed":
        plan, reader = plan_of(image, patch={mft: bytes(boot.record_size)})
    else:  # the second sector's update sequence number no longer matches
        plan, reader = plan_of(image, patch={mft + 1022: b"\xde\xad"})
    assert any("record 0" in n and "$MFTMirr" in n for n in plan.notes), plan.notes
    assert counts(plan) == counts(whole)
    assert plan.ranges(4) == whole.ranges(4)
    assert reader.duplicates() == []


@needs_ntfs3g
def test_mft_bitmap_unreadable_every_record_scanned(image: Path) -> None:
    whole, _ = plan_of(image)
    bitmap = next(a for a in whole.areas if a.what == "ntfs $MFT $BITMAP")
    plan, _ = plan_of(image, bad=[(bitmap.start, bitmap.size)])
    assert any("$BITMAP" in n for n in plan.notes), plan.notes
    assert counts(plan) == counts(whole)
    assert plan.ranges(4) == whole.ranges(4)


@needs_ntfs3g
def test_unreadable_records_are_noted_and_still_planned(image: Path) -> None:
    whole, _ = plan_of(image)
    boot = boot_of(image)
    bad = (boot.mft_lcn * boot.cluster + 64 * boot.record_size, 8 * boot.record_size)
    plan, _ = plan_of(image, bad=[bad])
    lost = plan.counts["ntfs:bad_records"]
    assert 0 < lost <= 8
    assert plan.counts["ntfs:records"] == whole.counts["ntfs:records"] - lost
    assert coverage([bad], plan.ranges(2)) == 1.0  # still to be rescued
    assert any("unreadable or invalid" in n for n in plan.notes)


@needs_ntfs3g
def test_record_zero_and_mirror_lost_mft_guessed(image: Path) -> None:
    boot = boot_of(image)
    mft, mirror = boot.mft_lcn * boot.cluster, boot.mirr_lcn * boot.cluster
    plan, _ = plan_of(image, bad=[(mft, boot.record_size), (mirror, boot.record_size)])
    assert any("contiguously" in n for n in plan.notes), plan.notes
    assert plan.counts["ntfs:directories"] >= 20  # the first MFT extent is found


# ------------------------------------------------------------------ $MFT with an attribute list
def protect(record: bytearray) -> None:
    """Apply the update sequence to a record about to be written (the inverse of fixups)."""
    usa_ofs, count = struct.unpack_from("<HH", record, 4)
    usn = record[usa_ofs : usa_ofs + 2]
    for i in range(count - 1):
        end = (i + 1) * 512
        record[usa_ofs + 2 + 2 * i : usa_ofs + 4 + 2 * i] = record[end - 2 : end]
        record[end - 2 : end] = usn


def attributes(record: bytearray) -> list[bytes]:
    """The attribute records of a (fixed-up) MFT record, in order."""
    pos, out = struct.unpack_from("<H", record, 20)[0], []
    while struct.unpack_from("<I", record, pos)[0] != 0xFFFFFFFF:
        length = struct.unpack_from("<I", record, pos + 4)[0]
        out.append(bytes(record[pos : pos + length]))
        pos += length
    return out


def with_attributes(record: bytearray, attrs: list[bytes]) -> bytearray:
    body = b"".join(attrs) + b"\xff\xff\xff\xff\0\0\0\0"
    start = struct.unpack_from("<H", record, 20)[0]
    out = bytearray(record[:start]) + body
    out += bytes(len(record) - len(out))
    struct.pack_into("<I", out, 24, start + len(body))
    return out


def signed(value: int) -> bytes:
    """The shortest little-endian two's complement bytes of ``value`` (as runlists store it)."""
    for n in range(1, 9):
        if -(1 << (8 * n - 1)) <= value < 1 << (8 * n - 1):
            return value.to_bytes(n, "little", signed=True)
    raise ValueError(value)


def encode_runs(runs: list[tuple[int, int, int]]) -> bytes:
    """Mapping pairs of ``(vcn, lcn, clusters)`` runs (no sparse runs), 8-byte padded."""
    out, prev = b"", 0
    for _vcn, lcn, length in runs:
        n, delta = signed(length), signed(lcn - prev)
        out += bytes([len(delta) << 4 | len(n)]) + n + delta
        prev = lcn
    out += b"\0"
    return out + bytes(-len(out) % 8)


def data_segment(header: bytes, runs: list[tuple[int, int, int]], first: bool) -> bytes:
    """A non-resident unnamed $DATA attribute holding ``runs`` (a segment of the runlist)."""
    attr = bytearray(header[:64]) + encode_runs(runs)
    struct.pack_into("<I", attr, 4, len(attr))
    struct.pack_into("<qqH", attr, 16, runs[0][0], runs[-1][0] + runs[-1][2] - 1, 64)
    if not first:
        struct.pack_into("<qqq", attr, 40, 0, 0, 0)
    return bytes(attr)


def split_mft_data(data: bytearray, boot: ntfs.Boot, ext: int, split: int) -> None:
    """Move $MFT's runlist from cluster ``split`` on into extension record ``ext``, listed by a
    new $ATTRIBUTE_LIST in record 0 (what Windows does when the MFT gets too fragmented)."""
    rs, mft = boot.record_size, boot.mft_lcn * boot.cluster
    rec0 = bytearray(data[mft : mft + rs])
    assert ntfs.apply_fixups(rec0, b"FILE")
    attrs = attributes(rec0)
    old = next(a for a in attrs if a[:4] == b"\x80\0\0\0")
    runs = ntfs.decode_runs(old, 64, len(old), 0, boot.clusters)
    assert runs and runs[0][2] > split and all(lcn is not None for _, lcn, _ in runs)
    (vcn, lcn, n), *more = runs
    head = data_segment(old, [(vcn, lcn, split)], True)
    tail = data_segment(old, [(split, lcn + split, n - split), *more], False)  # type: ignore
    seq0 = struct.unpack_from("<H", rec0, 16)[0]
    attrs = [head if a is old else a for a in attrs]
    entries = b""
    for a in sorted([*attrs, tail], key=lambda a: (a[:4][::-1], a is tail)):  # type, vcn
        where, lowest = (ext, split) if a is tail else (0, 0)
        ref = where | (1 if where else seq0) << 48
        entries += struct.pack("<IHBBqQH", struct.unpack_from("<I", a)[0], 32, 0, 26, lowest,
                               ref, a[14]) + bytes(6)  # fmt: skip
    alist = struct.pack("<IIBBHHHIHBB", 0x20, 24 + len(entries), 0, 0, 24, 0, 9,
                        len(entries), 24, 0, 0) + entries  # fmt: skip
    rec0 = with_attributes(rec0, [attrs[0], alist, *attrs[1:]])
    extension = bytearray(rs)
    struct.pack_into("<4sHHQHHHHIIQHHI", extension, 0, b"FILE", 0x30, rs // 512 + 1, 0, 1, 0,
                     0x38, 1, 0, rs, seq0 << 48, 1, 0, ext)  # fmt: skip
    struct.pack_into("<H", extension, 0x30, 1)
    extension = with_attributes(extension, [tail])
    for number, record in ((0, rec0), (ext, extension)):
        protect(record)
        data[mft + number * rs : mft + (number + 1) * rs] = record
    mirror = boot.mirr_lcn * boot.cluster
    data[mirror : mirror + rs] = rec0  # so that libntfs-3g accepts the volume


@needs_ntfs3g
def test_mft_attribute_list(image: Path, tmp_path: Path) -> None:
    """$MFT's runlist in an extension record is followed (through record 0's list)."""
    whole, _ = plan_of(image)
    data = bytearray(image.read_bytes())
    boot = boot_of(image)
    split_mft_data(data, boot, 20, 16)
    bitmap = next(a for a in whole.areas if a.what == "ntfs $MFT $BITMAP")
    data[bitmap.start + 2] |= 1 << 4  # record 20 in use
    moved = tmp_path / "moved.img"
    moved.write_bytes(data)
    plan, reader = plan_of(moved)
    assert plan.notes == []
    assert counts(plan) == libfsntfs_counts(moved)
    assert plan.counts["ntfs:records"] == whole.counts["ntfs:records"] + 1
    assert plan.ranges(4) == whole.ranges(4)
    ext_pos = boot.mft_lcn * boot.cluster + 20 * boot.record_size
    assert any(a.start == ext_pos and a.what == "ntfs $MFT extension record" for a in plan.areas)
    assert reader.duplicates() == []


# ------------------------------------------------------------------ inside a partitioned disk
@needs_ntfs3g
def test_gpt_disk(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    parts = make_disk(disk, "label: gpt\n,4M,L\n,24M,L\n", 32 * MiB)
    start, size = parts[1]
    vol = tmp_path / "vol.img"
    mkntfs(vol, size, "-p", str(start // 512))
    mounted_rw(vol, tmp_path / "mnt", lambda root: populate_tree(root, nfiles=150, big=()))
    place(disk, vol, start)
    data = disk.read_bytes()
    plan = plan_disk(lambda pos, n: data[pos : pos + n], len(data))
    assert (start, size, "ntfs") in plan.filesystems
    assert counts(plan) == libfsntfs_counts(vol)
    p0 = plan.ranges(0)
    assert any(s <= start < e for s, e in p0) and any(s < start + size <= e for s, e in p0)


# ------------------------------------------------------------------ probing and parsing
@needs_ntfs3g
def test_probe_rejects_others(tmp_path: Path, image: Path) -> None:
    zero = bytes(8 * MiB)
    plan = Plan(len(zero))
    assert not ntfs.probe(Volume(lambda p, n: zero[p : p + n], 0, len(zero), plan))
    # a stale NTFS backup at the end does not win over another boot sector at the start
    data = bytearray(image.read_bytes())
    data[0:512] = b"\xeb\x3c\x90mkfs.fat" + bytes(501)
    assert not ntfs.probe(Volume(lambda p, n: bytes(data[p : p + n]), 0, len(data), plan))
    data[0:512] = bytes(512)  # but a blank one leads to the backup
    assert ntfs.probe(Volume(lambda p, n: bytes(data[p : p + n]), 0, len(data), plan))


def test_runlist_round_trip() -> None:
    runs = [(0, 4, 0x80), (0x80, 0x10000, 3), (0x83, 2, 0x7FFF), (0x8082, 0x20000, 1)]
    raw = encode_runs(runs)
    assert ntfs.decode_runs(raw, 0, len(raw), 0, 1 << 20) == runs


def test_runlist_decoding() -> None:
    # 0x21: 1-byte length, 2-byte offset; 0x01: sparse; negative relative offsets
    runs = bytes([0x21, 0x10, 0x00, 0x01, 0x01, 0x08, 0x11, 0x04, 0xF0, 0x00])
    assert ntfs.decode_runs(runs, 0, len(runs), 0, 1000) == [
        (0, 256, 16), (16, None, 8), (24, 240, 4)
    ]  # fmt: skip
    assert ntfs.decode_runs(runs, 0, len(runs), 0, 200) is None  # beyond the volume
    assert ntfs.decode_runs(runs[:-1], 0, 9, 0, 1000) is None  # no terminator
    assert ntfs.decode_runs(bytes([0x21, 0x10]), 0, 2, 0, 1000) is None  # truncated


def test_fixups() -> None:
    buf = bytearray(1024)
    buf[0:8] = b"FILE" + (48).to_bytes(2, "little") + (3).to_bytes(2, "little")
    buf[48:54] = b"\x07\x00\xaa\xbb\xcc\xdd"
    buf[510:512] = buf[1022:1024] = b"\x07\x00"
    good = bytearray(buf)
    assert ntfs.apply_fixups(good, b"FILE")
    assert good[510:512] == b"\xaa\xbb" and good[1022:1024] == b"\xcc\xdd"
    torn = bytearray(buf)
    torn[1022:1024] = b"\x08\x00"
    assert not ntfs.apply_fixups(torn, b"FILE")
    assert not ntfs.apply_fixups(bytearray(buf), b"INDX")
