"""``ddfs report``: damaged files of ext4, NTFS, FAT and exFAT images, against an oracle.

Each image is built with the filesystem's own tools and a known tree (``/a/b/c/f1`` and
friends). A map is written that marks chosen bytes bad or unrescued (the image itself stays
intact, so the oracle still sees everything): the bytes of known files (found with pytsk3,
debugfs or from the boot sector's fields), a directory's block (a lost parent), an MFT record
or an inode table block (an unknown extent). The expected report is computed from pytsk3's
walk of the image: every file and directory whose runs meet the marked ranges, with the exact
bad and unrescued byte counts, and the paths the report must rebuild.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import pytsk3

from tests.conftest import run_ddfs
from tests.fsimages import make_disk, place

MiB = 1 << 20
Range = tuple[int, int, str]  # (start, end, status)
F1_SIZE = 50_000
G_SIZE = 20_000


# ------------------------------------------------------------------ maps and the oracle
def write_map(path: Path, size: int, marks: list[Range]) -> Path:
    """A finished map of ``size`` bytes but for ``marks``."""
    lines, pos = ["0 +"], 0
    for s, e, st in sorted(marks):
        assert s >= pos, "marks overlap"
        if s > pos:
            lines.append(f"{pos:#x} {s - pos:#x} +")
        lines.append(f"{s:#x} {e - s:#x} {st}")
        pos = e
    if pos < size:
        lines.append(f"{pos:#x} {size - pos:#x} +")
    path.write_text("\n".join(lines) + "\n")
    return path


def overlap(spans: list[tuple[int, int]], marks: list[Range]) -> tuple[int, int]:
    bad = unres = 0
    for s, e in spans:
        for ms, me, st in marks:
            n = min(e, me) - max(s, ms)
            if n > 0:
                if st == "-":
                    bad += n
                else:
                    unres += n
    return bad, unres


def tsk_spans(fs: Any, path: str, offset: int, directory: bool) -> list[tuple[int, int]]:
    """Absolute byte ranges of a file's data (a directory's blocks or $I30 allocation)."""
    bs = fs.info.block_size
    out = []
    for attr in fs.open(path):
        t = int(attr.info.type)
        if (directory and t not in (1, 160)) or (not directory and t not in (1, 128)):
            continue
        if t == 160 and attr.info.name != b"$I30":
            continue
        size = attr.info.size
        for run in attr:
            if run.flags & 3:  # filler or sparse
                continue
            lo = run.offset * bs
            hi = min((run.offset + run.len) * bs, size)
            if hi > lo:
                start = offset + run.addr * bs
                out.append((start, start + hi - lo))
    return out


def tsk_walk(image: Path, offset: int = 0) -> Iterator[tuple[str, bool, Any]]:
    """``(path, is_directory, fs)`` of every file and directory, the root included."""
    fs = pytsk3.FS_Info(pytsk3.Img_Info(str(image)), offset=offset)
    yield "/", True, fs
    todo = ["/"]
    while todo:
        d = todo.pop()
        for e in fs.open_dir(d):
            name = e.info.name.name.decode()
            if name in (".", "..") or name.startswith("$") or e.info.meta is None:
                continue
            if e.info.name.type == pytsk3.TSK_FS_NAME_TYPE_VIRT or "Volume Label" in name:
                continue
            path = d.rstrip("/") + "/" + name
            is_dir = e.info.meta.type == pytsk3.TSK_FS_META_TYPE_DIR
            yield path, is_dir, fs
            if is_dir:
                todo.append(path)


def expected(
    image: Path, marks: list[Range], offset: int = 0, renames: dict[str, str] | None = None
) -> dict[str, tuple[int, int]]:
    """Path -> (bad, unrescued) of the oracle's damaged entries, paths renamed as lost."""
    out = {}
    for path, is_dir, fs in tsk_walk(image, offset):
        hit = overlap(tsk_spans(fs, path, offset, is_dir), marks)
        if any(hit):
            for old, new in (renames or {}).items():
                if path == old or path.startswith(old + "/"):
                    path = new + path[len(old) :]
            out[path] = hit
    return out


def report(image: Path, mapfile: Path) -> dict[str, Any]:
    done = run_ddfs("report", str(image), str(mapfile), "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def files_of(part: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {f["path"]: (f["bad"], f["unrescued"]) for f in part["files"]}


def meta_of(part: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {m["structure"]: (m["bad"], m["unrescued"]) for m in part["metadata"]}


def span_of(fs_image: Path, path: str, offset: int = 0, directory: bool = False) -> tuple[int, int]:
    """The first run of a file (absolute), from pytsk3."""
    fs = pytsk3.FS_Info(pytsk3.Img_Info(str(fs_image)), offset=offset)
    return tsk_spans(fs, path, offset, directory)[0]


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    assert not missing, f"missing tools {missing}: run `make test`"


# ------------------------------------------------------------------ the trees
def tree(root: Path) -> Path:
    """/a/b/c/f1 (50,000 B), /a/b/x1..x3, /d/g (20,000 B), /top.txt."""
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "d").mkdir()
    (root / "a" / "b" / "c" / "f1").write_bytes(os.urandom(F1_SIZE))
    for i in range(1, 4):
        (root / "a" / "b" / f"x{i}").write_bytes(os.urandom(3000))
    (root / "d" / "g").write_bytes(os.urandom(G_SIZE))
    (root / "top.txt").write_text("hello\n")
    return root


def fill(dst: Path, src: Path) -> None:
    for item in sorted(src.rglob("*")):
        rel = item.relative_to(src)
        if item.is_dir():
            (dst / rel).mkdir(parents=True, exist_ok=True)
        else:
            shutil.copyfile(item, dst / rel)


# ------------------------------------------------------------------ ext4
def debugfs(image: Path, request: str) -> str:
    done = subprocess.run(
        ["debugfs", "-R", request, str(image)], capture_output=True, text=True, check=True
    )
    return done.stdout


def ext_inode(image: Path, path: str) -> int:
    return int(re.search(r"Inode: (\d+)", debugfs(image, f"stat {path}")).group(1))  # type: ignore[union-attr]


def make_ext(path: Path, src: Path, size: int = 16 * MiB) -> Path:
    need("mkfs.ext4", "debugfs")
    with open(path, "wb") as fh:
        fh.truncate(size)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-d", str(src), str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("report")
    tree(base / "tree")
    return base


@pytest.fixture(scope="module")
def ext_image(work: Path) -> Path:
    return make_ext(work / "ext.img", work / "tree")


def test_ext_files_and_lost_parent(ext_image: Path, tmp_path: Path) -> None:
    """b's only block is bad: c's name is lost, but c's ``..`` still leads to /a/b."""
    bs = 4096
    b_start, _ = span_of(ext_image, "/a/b", directory=True)
    f1_start, _ = span_of(ext_image, "/a/b/c/f1")
    g_start, _ = span_of(ext_image, "/d/g")
    bitmap = int(
        re.search(r"Group  0: block bitmap at (\d+)", debugfs(ext_image, "stats")).group(1)
    )  # type: ignore[union-attr]
    marks = [
        (b_start, b_start + bs, "-"),
        (f1_start + bs + 100, f1_start + 3 * bs, "?"),
        (g_start + 512, g_start + 1024, "-"),
        (bitmap * bs, bitmap * bs + 512, "/"),
    ]
    c_ino = ext_inode(ext_image, "/a/b/c")
    rep = report(ext_image, write_map(tmp_path / "map", ext_image.stat().st_size, marks))
    (part,) = rep["partitions"]
    assert part["filesystem"] == "ext" and part["number"] is None
    want = expected(ext_image, marks, renames={"/a/b/c": f"/a/b/<dir inode {c_ino}>"})
    assert files_of(part) == want
    assert want[f"/a/b/<dir inode {c_ino}>/f1"] == (0, 2 * bs - 100)
    assert want["/a/b"] == (bs, 0) and want["/d/g"] == (512, 0)
    lost = {f["path"]: f["name_lost"] for f in part["files"]}
    assert lost == {p: "<" in p for p in want}
    assert meta_of(part) == {"block bitmap of group 0": (0, 512)}
    assert part["unknown_extent"] == []
    assert (part["bad"], part["unrescued"]) == (bs + 512, 2 * bs - 100 + 512)
    assert part["unclaimed"] == {"bad": 0, "unrescued": 0}


def test_ext_unknown_inode(ext_image: Path, tmp_path: Path) -> None:
    """The inode table block holding /d/g's inode is unrescued: its in-use inodes are unknown
    extents, named from their directories; /d's inode is there too, so g's name is lost."""
    g_ino = ext_inode(ext_image, "/d/g")
    m = re.search(r"located at block (\d+)", debugfs(ext_image, f"imap <{g_ino}>"))
    assert m
    block = int(m.group(1))
    marks = [(block * 4096, block * 4096 + 4096, "?")]
    rep = report(ext_image, write_map(tmp_path / "map", ext_image.stat().st_size, marks))
    (part,) = rep["partitions"]
    per_block = 4096 // 256
    first = (g_ino - 1) // per_block * per_block + 1
    lost = range(first, first + per_block)
    fs = pytsk3.FS_Info(pytsk3.Img_Info(str(ext_image)))
    want = {}
    for path, _is_dir, _fs in tsk_walk(ext_image):
        ino = int(fs.open(path).info.meta.addr)
        parent = int(fs.open(os.path.dirname(path)).info.meta.addr) if path != "/" else 0
        if ino in lost and ino >= 11:
            want[f"inode {ino}"] = f"<unknown>/<inode {ino}>" if parent in lost else path
    got = {f["id"]: f["path"] for f in part["unknown_extent"]}
    assert got == want
    assert got[f"inode {g_ino}"] == f"<unknown>/<inode {g_ino}>"
    assert all(f["extent"] == "unknown" for f in part["unknown_extent"])
    assert all("inode table of group 0" in f["reason"] for f in part["unknown_extent"])
    assert part["files"] == []
    assert meta_of(part) == {"inode table of group 0": (0, 4096)}


def test_ext3_lost_indirect_block(work: Path, tmp_path: Path) -> None:
    """ext3 (block map, 1 KiB blocks): f1's indirect block is bad, so blocks 12-48 of it are
    unknown: a partial extent, its known blocks still counted; the block is metadata hit."""
    need("mkfs.ext3")
    image = tmp_path / "ext3.img"
    with open(image, "wb") as fh:
        fh.truncate(8 * MiB)
    subprocess.run(
        ["mkfs.ext3", "-q", "-F", "-b", "1024", "-d", str(work / "tree"), str(image)], check=True
    )
    ino = ext_inode(image, "/a/b/c/f1")
    blocks = debugfs(image, "stat /a/b/c/f1")
    m = re.search(r"\(0-11\):(\d+)-\d+, \(IND\):(\d+)", blocks)
    assert m, blocks
    first, ind = int(m.group(1)), int(m.group(2))
    marks = [(ind * 1024, ind * 1024 + 1024, "-"), (first * 1024, first * 1024 + 300, "?")]
    rep = report(image, write_map(tmp_path / "map", image.stat().st_size, marks))
    (part,) = rep["partitions"]
    assert part["files"] == []
    (f1,) = part["unknown_extent"]
    assert (f1["path"], f1["id"], f1["extent"]) == ("/a/b/c/f1", f"inode {ino}", "partial")
    assert (f1["bad"], f1["unrescued"]) == (0, 300)
    assert f"indirect block {ind} unreadable (logical blocks 12-" in f1["reason"]
    assert meta_of(part) == {f"indirect block of inode {ino} (/a/b/c/f1)": (1024, 0)}


def test_ext_text_output(ext_image: Path, tmp_path: Path) -> None:
    g_start, _ = span_of(ext_image, "/d/g")
    mapfile = write_map(
        tmp_path / "map", ext_image.stat().st_size, [(g_start, g_start + 4096, "-")]
    )
    done = run_ddfs("report", str(ext_image), str(mapfile))
    assert done.returncode == 0, done.stderr
    assert "Files and directories with damaged bytes (1):" in done.stdout
    assert re.search(r"^\s+4096\s+0\s+file\s+inode \d+\s+/d/g$", done.stdout, re.M)


# ------------------------------------------------------------------ NTFS
@contextmanager
def fuse_mounted(argv: list[str], mnt: Path) -> Iterator[Path]:
    mnt.mkdir(exist_ok=True)
    subprocess.run([*argv, str(mnt)], check=True, timeout=30, capture_output=True)
    try:
        yield mnt
    finally:
        done = subprocess.run(["umount", str(mnt)], capture_output=True, timeout=60)
        if done.returncode:
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def ntfs_image(work: Path) -> Path:
    need("mkfs.ntfs", "ntfs-3g")
    path = work / "ntfs.img"
    with open(path, "wb") as fh:
        fh.truncate(32 * MiB)
    subprocess.run(["mkfs.ntfs", "-F", "-Q", str(path)], check=True, capture_output=True)
    with fuse_mounted(["ntfs-3g", str(path)], work / "ntfs-mnt") as mnt:
        fill(mnt, work / "tree")
        for i in range(60):  # /a/b's index needs an allocation (INDX blocks)
            (mnt / "a" / "b" / f"a file with a rather long name {i:03d}.txt").write_text(str(i))
    return path


def mft_record(image: Path, number: int) -> tuple[int, int]:
    """Where MFT record ``number`` is (the MFT's first extent), from the boot sector."""
    with open(image, "rb") as fh:
        boot = fh.read(512)
    bps, spc = struct.unpack_from("<HB", boot, 11)
    (mft_lcn,) = struct.unpack_from("<Q", boot, 0x30)
    raw = struct.unpack_from("<b", boot, 0x40)[0]
    rs = raw * bps * spc if raw > 0 else 1 << -raw
    start = mft_lcn * bps * spc + number * rs
    return start, start + rs


def ntfs_record_of(image: Path, path: str) -> int:
    fs = pytsk3.FS_Info(pytsk3.Img_Info(str(image)))
    return int(fs.open(path).info.meta.addr)


@pytest.mark.fuse
def test_ntfs_files_and_lost_index(ntfs_image: Path, tmp_path: Path) -> None:
    """/a/b's index is bad: its children still get their paths from their own records."""
    b_start, b_end = span_of(ntfs_image, "/a/b", directory=True)
    f1_start, _ = span_of(ntfs_image, "/a/b/c/f1")
    g_start, _ = span_of(ntfs_image, "/d/g")
    marks = [
        (b_start, b_end, "-"),
        (f1_start + 4096, f1_start + 4096 + 3000, "*"),
        (g_start, g_start + 512, "-"),
    ]
    rep = report(ntfs_image, write_map(tmp_path / "map", ntfs_image.stat().st_size, marks))
    (part,) = rep["partitions"]
    assert part["filesystem"] == "ntfs"
    want = expected(ntfs_image, marks)
    assert set(want) == {"/a/b", "/a/b/c/f1", "/d/g"}
    assert files_of(part) == want
    assert want["/a/b/c/f1"] == (0, 3000)
    assert part["unknown_extent"] == [] and part["metadata"] == []


@pytest.mark.fuse
def test_ntfs_lost_record(ntfs_image: Path, tmp_path: Path) -> None:
    """c's MFT record is bad: c is an unknown extent named from /a/b's index, f1 keeps its
    path; with /a/b's index lost too, c's name is really gone: <MFT N>."""
    c = ntfs_record_of(ntfs_image, "/a/b/c")
    rec = mft_record(ntfs_image, c)
    f1_start, _ = span_of(ntfs_image, "/a/b/c/f1")
    marks = [(*rec, "-"), (f1_start, f1_start + 1000, "?")]
    size = ntfs_image.stat().st_size
    rep = report(ntfs_image, write_map(tmp_path / "map1", size, marks))
    (part,) = rep["partitions"]
    assert files_of(part) == {"/a/b/c/f1": (0, 1000)}
    (lost,) = part["unknown_extent"]
    assert (lost["path"], lost["id"], lost["type"]) == ("/a/b/c", f"MFT {c}", "directory")
    assert lost["extent"] == "unknown" and not lost["name_lost"]
    assert meta_of(part) == {f"$MFT record {c}": (rec[1] - rec[0], 0)}

    b_start, b_end = span_of(ntfs_image, "/a/b", directory=True)
    marks.append((b_start, b_end, "-"))
    rep = report(ntfs_image, write_map(tmp_path / "map2", size, marks))
    (part,) = rep["partitions"]
    want = expected(ntfs_image, marks, renames={"/a/b/c": f"<unknown>/<MFT {c}>"})
    assert files_of(part) == want
    assert f"<unknown>/<MFT {c}>/f1" in want  # c's record and its index entry are both lost
    (lost,) = part["unknown_extent"]
    assert lost["path"] == f"<unknown>/<MFT {c}>" and lost["name_lost"]


@pytest.mark.fuse
def test_ntfs_lost_parent_records(ntfs_image: Path, tmp_path: Path) -> None:
    """The MFT records of /a/b and /a/b/c are both bad: b is named from /a's index, c from
    b's index blocks found among the clusters no known stream claims, f1 from its record."""
    b, c = (ntfs_record_of(ntfs_image, p) for p in ("/a/b", "/a/b/c"))
    f1_start, _ = span_of(ntfs_image, "/a/b/c/f1")
    marks = [(*mft_record(ntfs_image, b), "-"), (*mft_record(ntfs_image, c), "?")]
    if c == b + 1:
        marks = [(marks[0][0], marks[1][1], "-")]
    marks.append((f1_start + 10, f1_start + 20, "-"))
    rep = report(ntfs_image, write_map(tmp_path / "map", ntfs_image.stat().st_size, marks))
    (part,) = rep["partitions"]
    assert files_of(part) == {"/a/b/c/f1": (10, 0)}
    lost = {f["id"]: (f["path"], f["type"], f["name_lost"]) for f in part["unknown_extent"]}
    assert lost == {
        f"MFT {b}": ("/a/b", "directory", False),
        f"MFT {c}": ("/a/b/c", "directory", False),
    }
    assert any("index blocks of lost directories" in n for n in part["notes"])


@pytest.mark.fuse
def test_backup_boot_sectors(ntfs_image: Path, work: Path, tmp_path: Path) -> None:
    """NTFS and FAT32 boot sectors bad: the backups are used, and the files still found."""
    fat32 = make_fat(tmp_path / "fat32.img", work / "tree", 32, 40 * MiB, 1)
    for image, fs in ((ntfs_image, "ntfs"), (fat32, "fat")):
        g_start, _ = span_of(image, "/d/g")
        marks = [(0, 512, "-"), (g_start, g_start + 100, "?")]
        rep = report(image, write_map(tmp_path / f"{fs}.map", image.stat().st_size, marks))
        (part,) = rep["partitions"]
        assert part["filesystem"] == fs
        assert files_of(part) == {"/d/g": (0, 100)}
        assert meta_of(part)["boot sector"] == (512, 0)
        assert any("backup" in n for n in part["notes"]), part["notes"]


# ------------------------------------------------------------------ FAT
def fat_fields(image: Path, offset: int = 0) -> tuple[int, int, int]:
    """(bytes per sector, reserved sectors, sectors per FAT) from the boot sector."""
    with open(image, "rb") as fh:
        fh.seek(offset)
        boot = fh.read(512)
    bps, _spc, reserved, _n, _root, _tot, _media, fatsz = struct.unpack_from("<HBHBHHBH", boot, 11)
    if fatsz == 0:
        fatsz = struct.unpack_from("<I", boot, 36)[0]
    return bps, reserved, fatsz


def make_fat(path: Path, src: Path, bits: int, size: int = 16 * MiB, spc: int = 4) -> Path:
    need("mkfs.vfat", "mcopy")
    with open(path, "wb") as fh:
        fh.truncate(size)
    subprocess.run(
        ["mkfs.vfat", "-F", str(bits), "-s", str(spc), str(path)], check=True, capture_output=True
    )
    subprocess.run(
        ["mcopy", "-s", "-i", str(path), *map(str, sorted(src.iterdir())), "::"], check=True
    )
    return path


@pytest.fixture(scope="module")
def fat_image(work: Path) -> Path:
    return make_fat(work / "fat16.img", work / "tree", 16)


def test_fat_files_lost_directory(fat_image: Path, tmp_path: Path) -> None:
    """/a/b's cluster is bad: c (whose entry was there) is found by its ``.``/``..`` entries."""
    b_start, b_end = span_of(fat_image, "/a/b", directory=True)
    f1_start, _ = span_of(fat_image, "/a/b/c/f1")
    bps, reserved, fatsz = fat_fields(fat_image)
    fat2 = (reserved + fatsz) * bps
    marks = [
        (b_start, b_end, "-"),
        (f1_start + 2048, f1_start + 2048 + 700, "?"),
        (fat2, fat2 + 512, "-"),
    ]
    rep = report(fat_image, write_map(tmp_path / "map", fat_image.stat().st_size, marks))
    (part,) = rep["partitions"]
    assert part["filesystem"] == "fat"
    c_cluster = int(
        re.search(
            r"<(\d+)",
            subprocess.run(  # type: ignore[union-attr]
                ["mshowfat", "-i", str(fat_image), "::/a/b/c"], capture_output=True, text=True
            ).stdout,
        ).group(1)
    )
    want = expected(fat_image, marks, renames={"/a/b/c": f"/a/b/<dir cluster {c_cluster}>"})
    assert files_of(part) == want
    assert want[f"/a/b/<dir cluster {c_cluster}>/f1"] == (0, 700)
    assert meta_of(part) == {"FAT 2": (512, 0)}
    lost = part["unknown_extent"]
    assert len(lost) == 3  # x1..x3, whose entries were in the lost cluster
    assert all(f["path"].startswith("<unknown>/<chain at cluster") for f in lost)


def test_fat_lost_root(fat_image: Path, tmp_path: Path) -> None:
    """FAT16's root region is bad: /a and /d are found by their ``..`` (the root)."""
    root_start, root_end = span_of(fat_image, "/", directory=True)
    g_start, _ = span_of(fat_image, "/d/g")
    marks = [(root_start, root_end, "-"), (g_start, g_start + 4096, "?")]
    rep = report(fat_image, write_map(tmp_path / "map", fat_image.stat().st_size, marks))
    (part,) = rep["partitions"]
    clusters = {}
    for name in ("a", "d"):
        out = subprocess.run(
            ["mshowfat", "-i", str(fat_image), f"::/{name}"], capture_output=True, text=True
        ).stdout
        clusters[name] = int(re.search(r"<(\d+)", out).group(1))  # type: ignore[union-attr]
    renames = {f"/{n}": f"/<dir cluster {c}>" for n, c in clusters.items()}
    want = expected(fat_image, marks, renames=renames)
    assert files_of(part) == want
    assert want[f"/<dir cluster {clusters['d']}>/g"] == (0, 4096)
    assert want["/"] == (root_end - root_start, 0)
    (top,) = part["unknown_extent"]  # /top.txt, whose entry was in the root
    assert top["path"].startswith("<unknown>/<chain at cluster ")


# ------------------------------------------------------------------ exFAT
@contextmanager
def loop_device(image: Path) -> Iterator[str]:
    dev = subprocess.run(
        ["losetup", "-f", "--show", str(image)], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        yield dev
    finally:
        for _ in range(50):
            if subprocess.run(["losetup", "-d", dev], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)


@pytest.fixture(scope="module")
def exfat_image(work: Path) -> Path:
    need("mkfs.exfat", "mount.exfat-fuse", "losetup")
    path = work / "exfat.img"
    with open(path, "wb") as fh:
        fh.truncate(16 * MiB)
    subprocess.run(["mkfs.exfat", str(path)], check=True, capture_output=True)
    with loop_device(path) as dev, fuse_mounted(["mount.exfat-fuse", dev], work / "x-mnt") as mnt:
        fill(mnt, work / "tree")
    return path


@pytest.mark.fuse
def test_exfat_files(exfat_image: Path, tmp_path: Path) -> None:
    f1_start, _ = span_of(exfat_image, "/a/b/c/f1")
    g_start, _ = span_of(exfat_image, "/d/g")
    c_start, c_end = span_of(exfat_image, "/a/b/c", directory=True)
    marks = [
        (2048, 2560, "-"),  # sector 4: in the main boot region, not the boot sector
        (12 * 512, 13 * 512, "?"),  # the backup boot sector
        (c_start, c_end, "/"),
        (f1_start + 100, f1_start + 5000, "-"),
        (g_start + 4096, g_start + 4096 + 4096, "?"),
    ]
    rep = report(exfat_image, write_map(tmp_path / "map", exfat_image.stat().st_size, marks))
    (part,) = rep["partitions"]
    assert part["filesystem"] == "exfat"
    want = expected(exfat_image, marks)
    assert set(want) == {"/a/b/c", "/a/b/c/f1", "/d/g"}
    f1 = want.pop("/a/b/c/f1")  # its entry set is in c's lost cluster: exFAT has no other
    assert files_of(part) == want
    assert part["unclaimed"] == {"bad": f1[0], "unrescued": f1[1]}
    assert any("sector(s) unreadable" in n for n in part["notes"])
    assert meta_of(part) == {"main boot region": (512, 0), "backup boot region": (0, 512)}
    assert part["unknown_extent"] == []


@pytest.mark.fuse
def test_exfat_lost_directory(exfat_image: Path, tmp_path: Path) -> None:
    """/a/b's cluster is bad: c, whose entry set was there, is found by its content, and f1
    in it keeps its name; exFAT has no ``..``, so c's parent is unknown."""
    with open(exfat_image, "rb") as fh:
        boot = fh.read(512)
    heap, shifts = struct.unpack_from("<I", boot, 88)[0], boot[108:110]
    sector, cluster = 1 << shifts[0], 1 << (shifts[0] + shifts[1])
    b_start, b_end = span_of(exfat_image, "/a/b", directory=True)
    c_start, _ = span_of(exfat_image, "/a/b/c", directory=True)
    c = (c_start - heap * sector) // cluster + 2
    f1_start, _ = span_of(exfat_image, "/a/b/c/f1")
    marks = [(b_start, b_end, "-"), (f1_start, f1_start + 777, "?")]
    rep = report(exfat_image, write_map(tmp_path / "map", exfat_image.stat().st_size, marks))
    (part,) = rep["partitions"]
    want = expected(exfat_image, marks, renames={"/a/b/c": f"<unknown>/<dir cluster {c}>"})
    assert files_of(part) == want
    assert want[f"<unknown>/<dir cluster {c}>/f1"] == (0, 777)
    (orphan,) = part["unknown_extent"]
    assert (orphan["path"], orphan["type"], orphan["extent"]) == (
        f"<unknown>/<dir cluster {c}>",
        "directory",
        "unknown",
    )


# ------------------------------------------------------------------ partitioned disks
@pytest.mark.parametrize("label", ["gpt", "dos"])
def test_two_partitions(label: str, work: Path, ext_image: Path, tmp_path: Path) -> None:
    """ext4 and FAT32 in partitions 1 and 2; damage in a file of each and in the tables."""
    fat = make_fat(tmp_path / "fat32.img", work / "tree", 32, 40 * MiB, 1)
    disk = tmp_path / "disk.img"
    layout = f"label: {label}\nstart=2048, size=32768\nstart=36864, size=81920\n"
    parts = make_disk(disk, layout, 64 * MiB)
    place(disk, ext_image, parts[0][0])
    place(disk, fat, parts[1][0])
    f1 = span_of(disk, "/a/b/c/f1", offset=parts[0][0])
    g = span_of(disk, "/d/g", offset=parts[1][0])
    size = disk.stat().st_size
    marks = [
        (f1[0], f1[0] + 4096, "-"),
        (g[0] + 1000, g[0] + 3000, "?"),
        (size - 512, size, "-"),
    ]
    if label == "gpt":  # a GPT is found without its protective MBR
        marks.append((0, 512, "-"))
    rep = report(disk, write_map(tmp_path / "map", size, marks))
    assert [(p["number"], p["scheme"], p["filesystem"]) for p in rep["partitions"]] == [
        (1, "gpt" if label == "gpt" else "mbr", "ext"),
        (2, "gpt" if label == "gpt" else "mbr", "fat"),
    ]
    p1, p2 = rep["partitions"]
    assert files_of(p1) == expected(disk, marks, parts[0][0]) == {"/a/b/c/f1": (4096, 0)}
    assert files_of(p2) == expected(disk, marks, parts[1][0]) == {"/d/g": (0, 2000)}
    if label == "gpt":
        hit = [m["structure"] for m in rep["disk_metadata"]]
        assert hit == ["MBR / boot sector", "backup GPT"]
        assert rep["notes"][0].startswith("MBR unreadable")
        assert (rep["bad"], rep["unrescued"]) == (4096 + 1024, 2000)
    else:
        assert rep["disk_metadata"] == [] and "outside the partitions" in rep["notes"][0]
        assert (rep["bad"], rep["unrescued"]) == (4096 + 512, 2000)


# ------------------------------------------------------------------ the JSON and the arguments
def test_json_structure(ext_image: Path, tmp_path: Path) -> None:
    g_start, _ = span_of(ext_image, "/d/g")
    mapfile = write_map(tmp_path / "map", ext_image.stat().st_size, [(g_start, g_start + 10, "-")])
    rep = report(ext_image, mapfile)
    assert set(rep) == {
        "version", "image", "mapfile", "image_size", "bad", "unrescued", "disk_metadata",
        "notes", "partitions",
    }  # fmt: skip
    assert rep["version"] == 1 and rep["image_size"] == ext_image.stat().st_size
    (part,) = rep["partitions"]
    assert set(part) == {
        "number", "name", "scheme", "start", "size", "filesystem", "bad", "unrescued", "files",
        "unknown_extent", "metadata", "unclaimed", "notes",
    }  # fmt: skip
    (f,) = part["files"]
    assert set(f) == {"path", "type", "id", "size", "bad", "unrescued", "extent", "name_lost",
                      "reason"}  # fmt: skip
    assert (f["path"], f["type"], f["size"], f["bad"], f["extent"]) == (
        "/d/g",
        "file",
        G_SIZE,
        10,
        "known",
    )
    assert part["unclaimed"] == {"bad": 0, "unrescued": 0}


def test_map_shorter_than_image_and_free_space(ext_image: Path, tmp_path: Path) -> None:
    """Past the map's end is unrescued; damage in free space is unclaimed."""
    size = ext_image.stat().st_size
    mapfile = tmp_path / "map"
    mapfile.write_text(f"0 +\n0 {size - 4096:#x} +\n")
    rep = report(ext_image, mapfile)
    (part,) = rep["partitions"]
    assert (rep["bad"], rep["unrescued"]) == (0, 4096)
    assert part["files"] == [] and part["unclaimed"] == {"bad": 0, "unrescued": 4096}


def test_bad_arguments(ext_image: Path, tmp_path: Path) -> None:
    good = write_map(tmp_path / "map", ext_image.stat().st_size, [])
    cases = [
        ((str(tmp_path / "nope.img"), str(good)), 1),
        ((str(ext_image), str(tmp_path / "nope.map")), 1),
        ((str(ext_image),), 1),
        ((str(ext_image), str(good), "--bogus"), 1),
    ]
    for args, code in cases:
        done = run_ddfs("report", *args)
        assert done.returncode == code, (args, done.stderr)
        assert done.stdout == ""
        assert done.stderr.startswith("ddfs: "), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    malformed = tmp_path / "bad.map"
    malformed.write_text("0 +\n0 0x1000 +\nnonsense here\n")
    done = run_ddfs("report", str(ext_image), str(malformed))
    assert done.returncode == 2
    assert done.stderr.strip() == f"ddfs: {malformed}: Error in mapfile, line 3: " + (
        done.stderr.split(": ", 3)[3].strip()
    )
    assert len(done.stderr.strip().splitlines()) == 1


def test_unknown_filesystem(tmp_path: Path) -> None:
    img = tmp_path / "zero.img"
    img.write_bytes(bytes(1 << 16))
    rep = report(img, write_map(tmp_path / "map", 1 << 16, [(0, 512, "-")]))
    (part,) = rep["partitions"]
    assert part["filesystem"] is None and part["unclaimed"] == {"bad": 512, "unrescued": 0}
    assert rep["disk_metadata"][0]["structure"] == "MBR / boot sector"
