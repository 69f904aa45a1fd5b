"""Part 3 of the live-mount benchmark (``bench/live_mount.py``): ``e2fsck`` during the rescue.

How much of a slow disk (served by ``ddfs simulate``) had been read when ``e2fsck -fn MNT/p1``
on the live mount finished, against ``e2fsck`` straight from the disk (a read-only loop
device), a full rescue by the same mount, and GNU ddrescue of the whole disk followed by
``e2fsck`` of the copy. All verdicts must equal the verdict on the original partition. See the
docstring of ``bench/live_mount.py`` for the whole method.
"""

from __future__ import annotations

import random
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import KiB, MiB, parse_size, print_table, scratch_dir
from bench.live_common import (
    SECTOR,
    LiveRow,
    ddfs_environment,
    loop_at,
    make_gpt,
    same_bytes,
    wait_until,
)

Fsck = tuple[float, int, str]  # (wall seconds, exit status, summary): what fsck() returns


def build_fs_disk(work: Path, size: int, p1_size: int, files_bytes: int) -> Path:
    """A GPT disk of ``size`` bytes whose ``p1`` (from 1 MiB) is ext4 full of files."""
    files = work / "files"
    rng = random.Random(11)
    total, d = 0, 0
    while total < files_bytes:
        sub = files / f"dir{d:03d}"
        (sub / "small").mkdir(parents=True)
        for i in range(40):
            n = rng.randrange(1, 250_000)
            (sub / f"f{i:02d}.bin").write_bytes(rng.randbytes(n))
            (sub / "small" / f"s{i:02d}.txt").write_text(f"{d} {i}\n" * rng.randrange(1, 200))
            total += n
        d += 1
    image = work / "disk.img"
    with open(image, "wb") as fh:
        fh.truncate(size)
    make_gpt(image, f"start={MiB // SECTOR}, size={p1_size // SECTOR}, type=L\n,,L\n")
    subprocess.run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-d",
            str(files),
            "-E",
            f"offset={MiB}",
            str(image),
            f"{p1_size // KiB}k",
        ],
        check=True,
        capture_output=True,
    )
    return image


def fsck(path: str | Path) -> Fsck:
    """``e2fsck -fn PATH``: (wall seconds, exit status, the summary after the colon)."""
    t = time.perf_counter()
    res = subprocess.run(["e2fsck", "-fn", str(path)], capture_output=True, text=True)
    wall = time.perf_counter() - t
    last = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else res.stderr
    return wall, res.returncode, last.split(":", 1)[-1].strip()


def copy_p1(disk_image: Path, p1: Path, p1_size: int) -> None:
    """Copy the partition ``p1`` (from 1 MiB, ``p1_size`` bytes) of a disk image to a file."""
    with open(disk_image, "rb") as fi, open(p1, "wb") as fo:
        fi.seek(MiB)
        fo.write(fi.read(p1_size))


@dataclass
class DiskWork:
    """A stretch of work on the simulated disk: its wall time and ``stats.json`` around it."""

    wall: float
    before: dict[str, Any]
    after: dict[str, Any]

    @property
    def read(self) -> int:
        return int(self.after["bytes"] - self.before["bytes"])

    @property
    def busy(self) -> float:
        return float(self.after["busy_seconds"] - self.before["busy_seconds"])

    def cells(self, size: int) -> list[str]:
        """Table cells: wall s, MiB read, share of the disk, disk busy s."""
        return [
            f"{self.wall:.2f}",
            f"{self.read / MiB:.1f}",
            f"{self.read / size:.3f}",
            f"{self.busy:.2f}",
        ]


@dataclass
class LiveFsck:
    """``e2fsck -fn MNT/p1`` on the live mount, then the same mount to 'finished'."""

    result: Fsck
    fsck_work: DiskWork  # from the mount's start to the end of e2fsck (wall: e2fsck alone)
    full_work: DiskWork  # from the mount's start to 'finished'
    t_mounted: float
    t_p1: float
    t_fsck_end: float
    at_fsck_end: dict[str, Any]  # status.json when e2fsck ended
    at_finish: dict[str, Any]  # status.json at 'finished'


def fsck_straight(disk: str, p1_size: int) -> tuple[Fsck, DiskWork]:
    """The reference: e2fsck of the partition straight from the disk (a loop device)."""
    from tests.simdisk import read_stats

    with loop_at(disk, MiB, p1_size) as dev:
        s0 = read_stats(disk)
        result = fsck(dev)
        s1 = read_stats(disk)
    work = DiskWork(result[0], s0, s1)
    print(f"  e2fsck straight from the disk: {result[0]:.2f} s, {work.read} bytes", flush=True)
    return result, work


def fsck_live(disk: str, work: Path, mnt: Path) -> LiveFsck:
    """e2fsck on the live mount as soon as ``p1`` appears; then the mount runs to the end."""
    from tests.mountproc import live_mount, status
    from tests.simdisk import read_stats

    s0 = read_stats(disk)
    t0 = time.monotonic()
    with live_mount(disk, work / "out", work / "map", mnt, "-q"):
        t_mounted = time.monotonic() - t0
        wait_until(lambda: (mnt / "p1").exists(), 60, "p1 did not appear")
        t_p1 = time.monotonic() - t0
        result = fsck(mnt / "p1")
        s1 = read_stats(disk)
        st = status(mnt)
        t_fsck_end = time.monotonic() - t0
        print(
            f"  e2fsck on the live mount: {result[0]:.2f} s, finished "
            f"{st['bytes']['finished']} bytes",
            flush=True,
        )
        wait_until(lambda: status(mnt)["phase"] == "finished", 3600, "not finished", 0.1)
        t_full = time.monotonic() - t0
        s2 = read_stats(disk)
        st_end = status(mnt)
    return LiveFsck(
        result,
        DiskWork(result[0], s0, s1),
        DiskWork(t_full, s0, s2),
        t_mounted,
        t_p1,
        t_fsck_end,
        st,
        st_end,
    )


def ddrescue_then_fsck(disk: str, work: Path, p1_size: int) -> tuple[Fsck, DiskWork]:
    """The GNU ddrescue way: copy the whole disk, then e2fsck the copy (wall: both)."""
    from tests.simdisk import read_stats

    s3 = read_stats(disk)
    t3 = time.monotonic()
    subprocess.run(["ddrescue", "-q", disk, str(work / "dd.img"), str(work / "dd.map")], check=True)
    t_dd = time.monotonic() - t3
    s4 = read_stats(disk)
    copy_p1(work / "dd.img", work / "dd.p1", p1_size)
    result = fsck(work / "dd.p1")
    return result, DiskWork(t_dd + result[0], s3, s4)


def check_verdicts(orig: Fsck, direct: Fsck, live: Fsck, dd: Fsck, same: bool) -> None:
    """Every e2fsck verdict equals the original's, and the rescued image equals the disk."""
    _, rc_orig, verdict = orig
    if dd[1:] != (rc_orig, verdict):
        raise RuntimeError(f"e2fsck after ddrescue: {dd[1]} {dd[2]!r}")
    if direct[1:] != (rc_orig, verdict) or live[1:] != (rc_orig, verdict):
        raise RuntimeError(
            f"e2fsck verdicts differ: original {rc_orig} {verdict!r}, direct {direct[1]} "
            f"{direct[2]!r}, live {live[1]} {live[2]!r}"
        )
    if not same:
        raise RuntimeError("the rescued image differs from the disk")


def print_fsck(
    size: int,
    p1_size: int,
    rate: str,
    seek_ms: float,
    orig: Fsck,
    ref: DiskWork,
    live: LiveFsck,
    dd: DiskWork,
) -> None:
    """The table of part 3 and the on-demand counters of the mount."""
    t_orig, _, verdict = orig
    finished = live.at_fsck_end["bytes"]["finished"]
    model_full = size / parse_size(rate)
    live_label = f"e2fsck -fn MNT/p1, live mount (p1 after {live.t_p1:.2f} s)"
    rows = [
        ["e2fsck -fn on the original p1 (tmpfs)", f"{t_orig:.3f}", "", "", ""],
        ["e2fsck -fn straight from the disk (loop)", *ref.cells(size)],
        [live_label, *live.fsck_work.cells(size)],
        [
            "  of which finished in the map at the end",
            "",
            f"{finished / MiB:.1f}",
            f"{finished / size:.3f}",
            "",
        ],
        ["full rescue by the same mount (to 'finished')", *live.full_work.cells(size)],
        ["GNU ddrescue of the whole disk, then e2fsck -fn", *dd.cells(size)],
        [
            "full pass, model only (size / rate)",
            f"{model_full:.2f}",
            f"{size / MiB:.1f}",
            "1.000",
            f"{model_full:.2f}",
        ],
    ]
    print()
    print(
        f"e2fsck -fn of a {p1_size / MiB:g} MiB ext4 partition on a {size / MiB:g} MiB disk at "
        f"{rate}/s, seek {seek_ms} ms (verdicts equal: {verdict}):"
    )
    print()
    print_table(["what", "wall s", "MiB read", "of the disk", "disk busy s"], rows)
    print()
    od, st_end = live.at_fsck_end["ondemand"], live.at_finish
    print(
        f"mounted after {live.t_mounted:.2f} s; e2fsck ended {live.t_fsck_end:.2f} s after the "
        f"start; on-demand at that point: {od['reads']} reads, {od['timeouts']} timeouts, "
        f"{od['readahead_requests']} read-aheads, {od['served']} served in "
        f"{od['serve_seconds']:.2f} s; final: {st_end['ondemand']['served']} served, "
        f"{st_end['reads']} engine reads"
    )
    print()


def fsck_rows(size: int, ref: DiskWork, live: LiveFsck, dd: DiskWork) -> list[LiveRow]:
    """The summary rows of part 3."""
    name = "e2fsck 256 MiB disk"
    share = f"{live.fsck_work.read / size:.3f}"
    t_live, t_full = live.result[0], live.full_work.wall
    return [
        LiveRow(name, "share of disk read at e2fsck end", "1.000 (full)", share, share),
        LiveRow(
            name,
            "wall s: e2fsck live vs full rescue",
            f"{t_full:.2f}",
            f"{t_live:.2f}",
            f"{t_live / t_full:.3f}",
        ),
        LiveRow(
            name,
            "wall s to the e2fsck verdict: ddrescue+e2fsck vs live",
            f"{dd.wall:.2f}",
            f"{t_live:.2f}",
            f"{t_live / dd.wall:.3f}",
        ),
        LiveRow(
            name,
            "wall s: e2fsck live vs straight",
            f"{ref.wall:.2f}",
            f"{t_live:.2f}",
            f"{t_live / ref.wall:.3f}",
        ),
    ]


def fsck_while_rescuing(
    size: int = 256 * MiB,
    rate: str = "20Mi",
    seek_ms: float = 8.0,
    keep: bool = False,
) -> list[LiveRow]:
    """Part 3: ``e2fsck -fn MNT/p1`` on the live mount of a slow disk; print the table."""
    from tests.simdisk import simulated_disk

    p1_size = size * 200 // 256
    with scratch_dir("live_fsck", keep) as work, ddfs_environment():
        mnt, sim = work / "mnt", work / "sim"
        mnt.mkdir()
        sim.mkdir()
        print(
            f"live mount, e2fsck: {size / MiB:g} MiB GPT disk, p1 ext4 of {p1_size / MiB:g} MiB, "
            f"rate {rate}/s, seek {seek_ms} ms",
            flush=True,
        )
        image = build_fs_disk(work, size, p1_size, files_bytes=p1_size * 3 // 4)
        copy_p1(image, work / "p1.orig", p1_size)
        orig = fsck(work / "p1.orig")
        print(f"  e2fsck of the original p1 (tmpfs): {orig[0]:.3f} s, {orig[2]}", flush=True)
        with simulated_disk(image, sim, rate=rate, seek_ms=seek_ms, error_ms=50) as disk:
            direct, ref = fsck_straight(disk, p1_size)
            live = fsck_live(disk, work, mnt)
            same = same_bytes(image, work / "out")
            dd, dd_work = ddrescue_then_fsck(disk, work, p1_size)
        check_verdicts(orig, direct, live.result, dd, same)
    print_fsck(size, p1_size, rate, seek_ms, orig, ref, live, dd_work)
    return fsck_rows(size, ref, live, dd_work)
