"""Test helpers for the metadata planner: filesystem images, readers, and what tools read.

* :func:`populate_tree` writes a deterministic tree of files and nested directories to copy
  into a filesystem (mtools, a FUSE driver, ``mke2fs -d``...).
* :class:`ImageReader` is a planner ``read(pos, size)`` over an image file that records every
  read and answers None for "bad" ranges (a simulated unreadable area).
* :func:`read_logged` serves an image through ``ddfs simulate --log-reads`` and runs a tool on
  it (directly on ``MNT/disk``, or on a read-only loop device of a part of it) and returns the
  ``(pos, size)`` of every read the tool made; :func:`coverage` tells which share of those bytes
  a plan's ranges hold.
* :func:`make_disk` / :func:`place` build a partitioned disk image with sfdisk and copy
  filesystem images into its partitions.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.simdisk import have_fuse, have_loop, simulated_disk

StrPath = str | os.PathLike[str]
Ranges = Iterable[tuple[int, int]]  # (start, end) byte ranges
Tool = Sequence[str] | Callable[[str], object]


# ------------------------------------------------------------------ content
def populate_tree(
    root: Path,
    nfiles: int = 300,
    depth: int = 12,
    big: Sequence[int] = (300_000, 1_500_000),
    seed: int = 7,
) -> tuple[int, int]:
    """Write files and nested directories under ``root``; return (directories, files) made.

    The tree has ``nfiles`` small files spread over a few directories (one crowded), a chain of
    ``depth`` nested directories with a file in each, some empty directories, long names and
    the ``big`` files (multi-cluster). ``root`` itself is not counted.
    """
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    dirs = files = 0

    def mkdir(path: Path) -> Path:
        nonlocal dirs
        path.mkdir(parents=True)
        dirs += 1
        return path

    def write(path: Path, size: int) -> None:
        nonlocal files
        path.write_bytes(rng.randbytes(size))
        files += 1

    spread = [mkdir(root / f"dir{i}") for i in range(4)]
    crowded = mkdir(root / "crowded directory with a long name")
    for i in range(nfiles):
        where = crowded if i % 2 else spread[i % len(spread)]
        write(where / f"file {i:04d} with a long name.txt", rng.randrange(0, 6000))
    nest = root
    for level in range(depth):
        nest = mkdir(nest / f"level{level:02d}")
        write(nest / f"at-level-{level}.bin", rng.randrange(1, 20000))
    for i in range(3):
        mkdir(root / "empty" / f"e{i}" if i else root / "empty")
    media = mkdir(root / "media")
    for i, size in enumerate(big):
        write(media / f"big{i}.dat", size)
    return dirs, files


# ------------------------------------------------------------------ readers
class ImageReader:
    """``read(pos, size)`` over an image file: records reads, answers None inside ``bad``.

    ``patch`` maps positions to bytes seen there instead of the image's (a corruption).
    """

    def __init__(self, path: StrPath, bad: Ranges = (), patch: dict[int, bytes] | None = None):
        self.path = os.fspath(path)
        self.size = os.path.getsize(self.path)
        self.bad = [(s, e) for s, e in bad]
        self.patch = dict(patch or {})
        self.reads: list[tuple[int, int]] = []

    def __call__(self, pos: int, size: int) -> bytes | None:
        self.reads.append((pos, size))
        if pos < 0 or size <= 0 or pos + size > self.size:
            return None
        if any(s < pos + size and pos < e for s, e in self.bad):
            return None
        with open(self.path, "rb") as fh:
            data = bytearray(os.pread(fh.fileno(), size, pos))
        for at, raw in self.patch.items():
            lo, hi = max(at, pos), min(at + len(raw), pos + size)
            if lo < hi:
                data[lo - pos : hi - pos] = raw[lo - at : hi - at]
        return bytes(data)

    def duplicates(self) -> list[tuple[int, int]]:
        """The reads made more than once."""
        seen: set[tuple[int, int]] = set()
        dups = []
        for r in self.reads:
            if r in seen:
                dups.append(r)
            seen.add(r)
        return dups


# ------------------------------------------------------------------ ranges
def merge(ranges: Ranges) -> list[tuple[int, int]]:
    """Sorted, disjoint union of ``(start, end)`` ranges."""
    out: list[tuple[int, int]] = []
    for s, e in sorted(r for r in ranges if r[1] > r[0]):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def rounded(ranges: Ranges, block: int) -> list[tuple[int, int]]:
    """``ranges`` widened to whole ``block``s (what a tool reading through the page cache gets)."""
    return merge((s // block * block, -(-e // block) * block) for s, e in ranges)


def overlap(a: Ranges, b: Ranges) -> int:
    """Bytes in both unions."""
    ma, mb = merge(a), merge(b)
    i = j = total = 0
    while i < len(ma) and j < len(mb):
        lo, hi = max(ma[i][0], mb[j][0]), min(ma[i][1], mb[j][1])
        total += max(0, hi - lo)
        if ma[i][1] < mb[j][1]:
            i += 1
        else:
            j += 1
    return total


def coverage(reads: Iterable[tuple[int, int]], ranges: Ranges) -> float:
    """Share of the unique bytes of ``reads`` (``(pos, size)``) inside ``ranges`` (1.0 if none)."""
    spans = merge((pos, pos + size) for pos, size in reads)
    total = sum(e - s for s, e in spans)
    return overlap(spans, ranges) / total if total else 1.0


def outside(reads: Iterable[tuple[int, int]], ranges: Ranges) -> list[tuple[int, int]]:
    """The parts of ``reads`` not inside ``ranges``, as ``(start, end)`` (for messages)."""
    cover = merge(ranges)
    out = []
    for s, e in merge((pos, pos + size) for pos, size in reads):
        cur = s
        for cs, ce in cover:
            if ce <= cur or cs >= e:
                continue
            if cs > cur:
                out.append((cur, cs))
            cur = max(cur, ce)
        if cur < e:
            out.append((cur, e))
    return out


# ------------------------------------------------------------------ tools through the FUSE view
def can_log_reads() -> bool:
    """FUSE and (for loop devices) root with losetup are there."""
    return have_fuse() and have_loop()


@contextmanager
def loop_range(path: StrPath, offset: int = 0, size: int | None = None) -> Iterator[str]:
    """A read-only loop device of ``path[offset:offset+size]`` without readahead; detached."""
    argv = ["losetup", "-r", "-f", "--show", "-o", str(offset)]
    if size is not None:
        argv += ["--sizelimit", str(size)]
    dev = subprocess.run(
        [*argv, os.fspath(path)], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    try:
        subprocess.run(["blockdev", "--setra", "0", dev], capture_output=True, check=False)
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True, check=False, timeout=30)


def _run_tool(tool: Tool, target: str) -> None:
    if callable(tool):
        tool(target)
    else:
        argv = [target if a == "{dev}" else a for a in tool]
        subprocess.run(argv, capture_output=True, check=False, timeout=120)


def read_logged(
    image: StrPath,
    tool: Tool,
    workdir: StrPath,
    *,
    offset: int | None = None,
    size: int | None = None,
    loop: bool = False,
) -> list[tuple[int, int]]:
    """The ``(pos, size)`` reads (image positions) that ``tool`` makes on ``image``.

    ``tool`` is an argv whose ``"{dev}"`` items are replaced by the device (``MNT/disk``, or a
    loop device of it when ``loop`` or ``offset``/``size`` are given), or a callable taking the
    device path (to mount, walk and unmount, for instance). Its exit status is ignored: tools
    like ``fsck -n`` exit non-zero on findings.
    """
    work = Path(workdir)
    mnt = work / "mnt"
    mnt.mkdir(parents=True, exist_ok=True)
    log = work / "reads.log"
    log.write_text("")
    with simulated_disk(image, mnt, log_reads=str(log)) as disk:
        log.write_text("")  # only the tool's reads
        if loop or offset is not None or size is not None:
            with loop_range(disk, offset or 0, size) as dev:
                _run_tool(tool, dev)
        else:
            _run_tool(tool, disk)
    reads = []
    for line in log.read_text().splitlines():
        pos, n, _status = line.split()
        reads.append((int(pos), int(n)))
    return reads


# ------------------------------------------------------------------ partitioned disks
def make_disk(path: StrPath, layout: str, size: int) -> list[tuple[int, int]]:
    """A sparse disk of ``size`` bytes partitioned by the sfdisk script ``layout``.

    Returns the ``(start, size)`` in bytes of each partition that holds data, in table order
    (extended containers left out).
    """
    with open(path, "wb") as fh:
        fh.truncate(size)
    subprocess.run(["sfdisk", "-q", os.fspath(path)], input=layout, text=True, check=True)
    table = json.loads(
        subprocess.run(
            ["sfdisk", "-J", os.fspath(path)], capture_output=True, text=True, check=True
        ).stdout
    )["partitiontable"]
    parts = table["partitions"]
    if table["label"] == "dos":
        parts = [p for p in parts if p["type"] not in ("5", "f", "85")]
    return [(p["start"] * 512, p["size"] * 512) for p in parts]


def gpt_ext4_disk(
    path: StrPath, tree: StrPath, size: int, start: int, part_size: int
) -> tuple[int, int]:
    """A GPT disk of ``size`` bytes at ``path`` with one ext4 partition of ``part_size`` bytes
    at ``start``, filled from the folder ``tree`` (``mkfs.ext4 -d``); returns (start, size)."""
    ((p_start, p_size),) = make_disk(
        path, f"label: gpt\nstart={start // 512}, size={part_size // 512}\n", size
    )
    fs = f"{os.fspath(path)}.p1.ext4"
    try:
        subprocess.run(
            ["mkfs.ext4", "-q", "-F", "-d", os.fspath(tree), fs, f"{p_size // 1024}k"],
            check=True,
        )
        place(path, fs, p_start)
    finally:
        if os.path.exists(fs):
            os.unlink(fs)
    return p_start, p_size


def place(disk: StrPath, image: StrPath, offset: int, chunk: int = 1 << 20) -> None:
    """Copy ``image`` into ``disk`` at ``offset`` (all-zero chunks are skipped: sparse)."""
    zero = bytes(chunk)
    with open(image, "rb") as src, open(disk, "r+b") as dst:
        pos = 0
        while block := src.read(chunk):
            if block != zero[: len(block)]:
                dst.seek(offset + pos)
                dst.write(block)
            pos += len(block)


def tool_exists(name: str) -> bool:
    return shutil.which(name) is not None
