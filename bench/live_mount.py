"""Benchmark 4: the live mount (``ddfs mount``) against reading without it.

Three questions, each answered in one run with a reference measured alongside:

1. ``sequential``: how fast is finished data read through the mount? The input (default
   1 GiB of seeded random data on tmpfs, with a GPT and one partition ``p1`` from 1 MiB to
   1 MiB before the end) is rescued by ``ddfs mount``; once ``status.json`` says ``finished``,
   ``dd if=X of=/dev/null bs=B`` reads, alternately and in a rotating order, ``MNT/image``,
   OUTFILE directly (tmpfs, page cache) and, as the ceiling of any pyfuse3 server, OUTFILE
   served by the smallest possible pyfuse3 server (:func:`serve_bare`: one ``direct_io``
   file, ``os.pread`` in the trio thread), for ``bs`` 128k, 1M and 4M, plus ``MNT/p1``
   against the same range of OUTFILE at bs=1M. Reported: median MiB/s (from the wall time
   of each ``dd`` process, start-up included), mount / OUTFILE and mount / bare server, and
   the CPU seconds of the ``ddfs mount`` process (all its threads, from ``/proc/PID/stat``)
   per GiB read. Checked: ``image``, ``p1`` and the bare server's file read back equal to
   the input.
2. ``ondemand``: the latency of a 4 KiB read of data not tried yet. A 256 MiB image is served
   by ``ddfs simulate`` (100 MiB/s, 8 ms seek, no bad sectors). ``os.pread`` of 4 KiB at
   random 4 KiB-aligned positions in the upper half of the disk (far ahead of the background
   pass, checked before each sample) is timed in four settings: (A) straight from
   ``MNT/disk``; (B) through a ``ddfs mount`` whose engine is idle (``-s 1Mi``: the schedule
   is over, the rest of the disk is untried); (C) through a ``ddfs mount`` whose copying pass
   is running, with 20 ms between samples; (D) the same, back to back. The modelled disk time
   of each urgent read is ``seek + 4096 / rate`` (verified: the simulator's ``read_sizes``
   must count exactly one 4096-byte read per sample). Reported: median and p90 of the raw
   latency and of latency minus the model, and, from ``status.json`` read before and after
   each sample (B, C), the engine's time serving the request (``serve_seconds``) and the
   latency minus that: in B the mount's own hand-off (FUSE, queue, wake-up, pread of the
   answer), in C that plus the wait for the one background read in progress. D - B is the
   wait when the engine has already gone back to the pass (a seek back) before the next
   read arrives. Checked: every sample returns the image's bytes.
3. ``fsck``: how much of the disk had been read when ``e2fsck -fn MNT/p1`` on the live mount
   finished. A 256 MiB GPT disk with a 200 MiB ext4 partition full of files (``mkfs.ext4 -d``,
   as ``tests/test_mount_e2e.py`` builds it) is served by ``ddfs simulate`` (20 MiB/s, 8 ms
   seek). Reference: e2fsck of the same partition straight from the simulated disk (a
   read-only loop device at the partition's offset). Then ``ddfs mount`` starts; as soon as
   ``p1`` appears, ``e2fsck -fn MNT/p1`` runs; when it ends, the bytes read from the disk
   (``stats.json``) and finished (``status.json``) are taken; the mount then runs to the end
   of its schedule, for the time of a full rescue. Checked: both e2fsck verdicts equal the
   verdict on the original partition.

Every ``ddfs`` process runs with byte-code caching (``bench.common.python_env``). Every mount
is unmounted in ``finally`` and every process is ended by its handle (``tests.simdisk``,
``tests.mountproc``); loop devices are detached in ``finally``.

Run: ``.venv/bin/python bench/live_mount.py [--only sequential ondemand fsck] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    GiB,
    KiB,
    MiB,
    Run,
    median,
    mib_per_s,
    parse_size,
    print_table,
    python_env,
    remove_scratch,
    run_measured,
    scratch_dir,
    write_random,
)

PARTS = ("sequential", "ondemand", "fsck")
SECTOR = 512
DD = "dd"


@dataclass
class LiveRow:
    """One row of the live-mount summary: a figure through the mount against a reference."""

    benchmark: str
    metric: str
    reference: str
    mount: str
    ratio: str

    @staticmethod
    def headers() -> list[str]:
        return ["benchmark", "metric", "reference", "ddfs mount", "mount / reference"]

    def row(self) -> list[str]:
        return [self.benchmark, self.metric, self.reference, self.mount, self.ratio]


# ---------------------------------------------------------------------- helpers
@contextmanager
def ddfs_environment() -> Iterator[None]:
    """Run the ``ddfs`` children started by the test helpers with byte-code caching.

    ``tests.simdisk`` and ``tests.mountproc`` start ``ddfs`` with this process's environment,
    so it is swapped for :func:`bench.common.python_env` meanwhile, then restored.
    """
    saved, wanted = dict(os.environ), python_env()
    os.environ.clear()
    os.environ.update(wanted)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def p90(values: Sequence[float]) -> float:
    """The 90th percentile (``statistics.quantiles``, exclusive method)."""
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


def same_bytes(a: Path, b: Path, offset_b: int = 0, size: int | None = None) -> bool:
    """True if ``a`` (whole, or its first ``size`` bytes) equals ``b`` from ``offset_b``."""
    left = size if size is not None else os.path.getsize(a)
    with open(a, "rb", buffering=0) as fa, open(b, "rb", buffering=0) as fb:
        fb.seek(offset_b)
        while left:
            n = min(left, 4 * MiB)
            x, y = fa.read(n), fb.read(n)
            if x != y or len(x) != n:
                return False
            left -= n
    return True


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.02
) -> None:
    """Poll ``predicate`` every ``step`` seconds; TimeoutError(``what``) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(step)


def make_gpt(path: Path, parts: str) -> None:
    """Write a GPT to ``path`` with ``sfdisk`` (``parts``: sfdisk's input after the label)."""
    subprocess.run(
        ["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(path)],
        input=f"label: gpt\n{parts}",
        text=True,
        check=True,
        capture_output=True,
    )


@contextmanager
def loop_at(path: str | Path, offset: int, size: int) -> Iterator[str]:
    """``path`` from ``offset`` (``size`` bytes) as a read-only loop device; detached in the end."""
    out = subprocess.run(
        ["losetup", "-r", "-f", "--show", "-o", str(offset), "--sizelimit", str(size), str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    dev = out.stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True, check=False, timeout=30)
        backing = f"/sys/block/{os.path.basename(dev)}/loop/backing_file"
        deadline = time.monotonic() + 10
        while os.path.exists(backing) and time.monotonic() < deadline:
            time.sleep(0.02)  # the kernel lets go of the file lazily


# ---------------------------------------------------------------------- 1. sequential
def dd_read(path: Path, bs: str, skip: int = 0, count: int = 0) -> Run:
    """``dd if=PATH of=/dev/null bs=BS [skip= count=]``, measured."""
    cmd = [DD, f"if={path}", "of=/dev/null", f"bs={bs}"]
    if skip:
        cmd.append(f"skip={skip}")
    if count:
        cmd.append(f"count={count}")
    return run_measured(cmd)


def sequential(size: int = GiB, rounds: int = 5, keep: bool = False) -> list[LiveRow]:
    """Part 1: ``dd`` through the mount against OUTFILE directly; print the tables."""
    from tests.mountproc import live_mount, status

    p1_start, p1_size = MiB, size - 2 * MiB
    with scratch_dir("live_sequential", keep) as work, ddfs_environment():
        infile, outfile, mapfile = work / "in", work / "out", work / "map"
        mnt, bare_mnt = work / "mnt", work / "bare"
        mnt.mkdir()
        bare_mnt.mkdir()
        print(f"live mount, sequential: {size / MiB:g} MiB of random data with a GPT", flush=True)
        write_random(infile, size, seed=9)
        make_gpt(infile, f"start={p1_start // SECTOR}, size={p1_size // SECTOR}, type=L\n")
        t0 = time.monotonic()
        with (
            live_mount(infile, outfile, mapfile, mnt, "-q") as mount,
            bare_fuse(outfile, bare_mnt) as bare,
        ):
            wait_until(lambda: status(mnt)["phase"] == "finished", 600, "rescue not finished")
            rescue_s = time.monotonic() - t0
            wait_until(lambda: (mnt / "p1").exists(), 30, "p1 did not appear")
            if os.path.getsize(mnt / "p1") != p1_size:
                raise RuntimeError(f"p1 has {os.path.getsize(mnt / 'p1')} bytes, not {p1_size}")
            pid = mount.proc.pid
            bs_list = ("128k", "1M", "4M")
            cases: list[tuple[str, str, Path, int, int]] = []  # (source, bs, path, skip, count)
            for bs in bs_list:
                cases += [("direct", bs, outfile, 0, 0), ("mount", bs, mnt / "image", 0, 0)]
                cases.append(("bare", bs, bare, 0, 0))
            cases.append(("direct p1", "1M", outfile, p1_start // MiB, p1_size // MiB))
            cases.append(("mount p1", "1M", mnt / "p1", 0, 0))
            for _, bs, path, skip, count in cases:  # warm-up, not counted
                dd_read(path, bs, skip, count)
            walls: dict[tuple[str, str], list[float]] = {(c[0], c[1]): [] for c in cases}
            cpus: dict[tuple[str, str], list[float]] = {(c[0], c[1]): [] for c in cases}
            for rnd in range(rounds):
                shift = rnd * 3 % len(cases)
                order = cases[shift:] + cases[:shift]
                if rnd % 2:
                    order.reverse()
                for src, bs, path, skip, count in order:
                    before = process_cpu(pid)
                    r = dd_read(path, bs, skip, count)
                    cpus[src, bs].append(process_cpu(pid) - before)
                    walls[src, bs].append(r.wall)
                line = ", ".join(
                    f"{s} {b} {mib_per_s(p1_size if 'p1' in s else size, w[-1]):.0f}"
                    for (s, b), w in walls.items()
                )
                print(f"  round {rnd + 1} MiB/s: {line}", flush=True)
            checks = {
                "image": same_bytes(infile, mnt / "image"),
                "p1": same_bytes(mnt / "p1", infile, p1_start, p1_size),
                "bare image": same_bytes(infile, bare),
                "outfile": same_bytes(infile, outfile),
            }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise RuntimeError(f"read back differs from the input: {', '.join(bad)}")

    def speed(src: str, bs: str) -> float:
        n = p1_size if "p1" in src else size
        return mib_per_s(n, median(walls[src, bs]))

    rows = []
    for bs in bs_list:
        d, m, b = speed("direct", bs), speed("mount", bs), speed("bare", bs)
        cpu = median(cpus["mount", bs]) / (size / GiB)
        cells = [f"{d:.0f}", f"{m:.0f}", f"{m / d:.3f}", f"{b:.0f}", f"{b / d:.3f}", f"{m / b:.3f}"]
        rows.append([f"image, bs={bs}", *cells, f"{cpu:.2f}"])
    d, m = speed("direct p1", "1M"), speed("mount p1", "1M")
    cpu = median(cpus["mount p1", "1M"]) / (p1_size / GiB)
    rows.append(["p1, bs=1M", f"{d:.0f}", f"{m:.0f}", f"{m / d:.3f}", "", "", "", f"{cpu:.2f}"])
    print()
    print(
        f"Sequential read of finished data, {size / MiB:g} MiB, median of {rounds} rounds "
        f"(rescue to 'finished': {rescue_s:.2f} s after start; contents checked):"
    )
    print()
    headers = ["read", "OUTFILE MiB/s", "mount MiB/s", "mount / OUTFILE", "bare FUSE MiB/s"]
    headers += ["bare / OUTFILE", "mount / bare", "mount CPU s/GiB"]
    print_table(headers, rows)
    print()
    out = []
    name = f"sequential {size / GiB:g} GiB"
    for bs in ("128k", "1M"):
        d, m = speed("direct", bs), speed("mount", bs)
        out.append(
            LiveRow(name, f"MiB/s, dd bs={bs}", f"{d:.0f} (OUTFILE)", f"{m:.0f}", f"{m / d:.3f}")
        )
    for bs in ("128k", "1M"):
        m, b = speed("mount", bs), speed("bare", bs)
        out.append(
            LiveRow(
                name, f"MiB/s, bs={bs}, vs bare FUSE", f"{b:.0f} (bare)", f"{m:.0f}", f"{m / b:.3f}"
            )
        )
    return out


# ---------------------------------------------------------------------- a bare FUSE server
BARE_FLAG = "--bare-fuse-server"


def serve_bare(image: str, mountpoint: str) -> int:
    """The smallest pyfuse3 server: one read-only file ``image``, ``direct_io``, inline pread.

    Run as ``python bench/live_mount.py --bare-fuse-server IMAGE MOUNTPOINT``: the ceiling of a
    pyfuse3 server on this machine, the most ``ddfs mount`` could reach for finished data.
    It serves until unmounted.
    """
    import errno
    import stat

    import pyfuse3
    import trio

    fd = os.open(image, os.O_RDONLY)
    size = os.lseek(fd, 0, os.SEEK_END)
    file_ino = pyfuse3.ROOT_INODE + 1

    class Bare(pyfuse3.Operations):  # type: ignore[misc]
        def _attr(self, ino: int) -> Any:
            attr = pyfuse3.EntryAttributes()
            attr.st_ino = ino
            is_file = ino == file_ino
            attr.st_mode = (stat.S_IFREG | 0o444) if is_file else (stat.S_IFDIR | 0o555)
            attr.st_size = size if is_file else 0
            attr.st_nlink = 1
            attr.attr_timeout = attr.entry_timeout = 60
            return attr

        async def getattr(self, inode: int, ctx: Any = None) -> Any:
            return self._attr(inode)

        async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None) -> Any:
            if name != b"image":
                raise pyfuse3.FUSEError(errno.ENOENT)
            return self._attr(file_ino)

        async def open(self, inode: int, flags: int, ctx: Any) -> Any:
            return pyfuse3.FileInfo(fh=inode, direct_io=True, keep_cache=False)

        async def read(self, fh: int, off: int, size: int) -> bytes:
            return os.pread(fd, size, off)

    async def main() -> None:
        pyfuse3.init(Bare(), mountpoint, {"ro", "fsname=bench-bare"})
        try:
            await pyfuse3.main()
        finally:
            pyfuse3.close(unmount=True)

    trio.run(main)
    return 0


@contextmanager
def bare_fuse(image: Path, mountpoint: Path) -> Iterator[Path]:
    """Serve ``image`` with :func:`serve_bare` in a child; yield ``MOUNTPOINT/image``.

    The mount is removed and the child ended by its handle in the end (``tests.simdisk``).
    """
    from tests.simdisk import SimulateProcess

    mnt = os.path.realpath(mountpoint)
    argv = [sys.executable, __file__, BARE_FLAG, str(image), mnt]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        server = SimulateProcess(proc, err, mnt)
        try:
            server.wait_mounted()
            yield Path(mnt) / "image"
        finally:
            server.stop()


# ---------------------------------------------------------------------- 2. on-demand
@dataclass
class Samples:
    """The latencies of one setting (seconds) and the engine's serve time for them."""

    name: str
    latency: list[float]
    serve: list[float]  # the engine's time serving each request (status.json serve_seconds)
    outside: list[float]  # per sample: latency - serve (hand-off and wait in the queue)
    skipped: int = 0


def sample_positions(size: int, count: int, rng: random.Random) -> list[int]:
    """``count`` distinct 4 KiB-aligned positions in the upper half, in separate 64 KiB slots."""
    slots = rng.sample(range(size // 2 // (64 * KiB), size // (64 * KiB)), count)
    return [s * 64 * KiB + rng.randrange(16) * 4 * KiB for s in slots]


def time_reads(
    path: Path,
    positions: list[int],
    image: Path,
    pause: float,
    mnt: Path | None = None,
    margin: int = 16 * MiB,
) -> Samples:
    """Timed 4 KiB ``pread`` of ``path`` at each position, checked against ``image``.

    With ``mnt`` (a live mount) and a pause, ``status.json`` is read before and after each
    sample for the engine's serve time, and a position less than ``margin`` ahead of the
    background pass is skipped.
    """
    from tests.mountproc import status

    lat: list[float] = []
    serve: list[float] = []
    outside: list[float] = []
    skipped = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        with open(image, "rb", buffering=0) as fi:
            for pos in positions:
                before = status(mnt) if mnt is not None and pause else None
                if before is not None and pos < before["current_pos"] + margin:
                    skipped += 1
                    continue
                t = time.perf_counter()
                data = os.pread(fd, 4096, pos)
                lat.append(time.perf_counter() - t)
                if before is not None:
                    after = status(mnt)
                    od_a, od_b = before["ondemand"], after["ondemand"]
                    if od_b["served"] - od_a["served"] == 1:
                        serve.append(od_b["serve_seconds"] - od_a["serve_seconds"])
                        outside.append(lat[-1] - serve[-1])
                fi.seek(pos)
                if data != fi.read(4096):
                    raise RuntimeError(f"{path}: 4 KiB at {pos} differ from the image")
                if pause:
                    time.sleep(pause)
    finally:
        os.close(fd)
    return Samples("", lat, serve, outside, skipped)


def ondemand(
    size: int = 256 * MiB,
    samples: int = 50,
    rate: str = "100Mi",
    seek_ms: float = 8.0,
    pause: float = 0.02,
    keep: bool = False,
) -> list[LiveRow]:
    """Part 2: latency of 4 KiB reads of untried data; print the tables."""
    from tests.mountproc import live_mount, status
    from tests.simdisk import read_stats, simulated_disk

    rate_bps = parse_size(rate)
    model = seek_ms / 1000 + 4096 / rate_bps
    rng = random.Random(17)
    positions = sample_positions(size, 4 * samples, rng)
    sets = [positions[i * samples : (i + 1) * samples] for i in range(4)]
    results: list[Samples] = []
    with scratch_dir("live_ondemand", keep) as work, ddfs_environment():
        image, mnt, sim = work / "image", work / "mnt", work / "sim"
        mnt.mkdir()
        sim.mkdir()
        print(
            f"live mount, on-demand: {size / MiB:g} MiB image, rate {rate}/s, seek {seek_ms} ms, "
            f"{samples} samples per setting",
            flush=True,
        )
        write_random(image, size, seed=7)
        with simulated_disk(image, sim, rate=rate, seek_ms=seek_ms, error_ms=50) as disk:

            def sampled(
                name: str, path: Path, where: list[int], gap: float, live: Path | None
            ) -> Samples:
                """time_reads, checked: exactly one 4096-byte disk read per sample meanwhile."""
                n0 = int(read_stats(disk)["read_sizes"].get("4096", 0))
                res = time_reads(path, where, image, gap, live)
                res.name = name
                n = int(read_stats(disk)["read_sizes"].get("4096", 0)) - n0
                if live is not None and n != len(res.latency):
                    raise RuntimeError(
                        f"{name}: {n} reads of 4096 bytes, {len(res.latency)} samples"
                    )
                return res

            # (A) straight from the simulated disk
            results.append(sampled("A disk direct", Path(disk), sets[0], pause, None))
            # (B) through a mount whose schedule is over (-s 1Mi): the engine is idle
            with live_mount(disk, work / "out.b", work / "map.b", mnt, "-q", "-s", "1Mi"):
                wait_until(lambda: status(mnt)["phase"] == "finished", 60, "B: not finished")
                results.append(sampled("B mount, engine idle", mnt / "image", sets[1], pause, mnt))
            # (C), (D) through a mount whose copying pass runs
            with live_mount(disk, work / "out.c", work / "map.c", mnt, "-q"):
                wait_until(
                    lambda: status(mnt)["partition_table"] != "not read yet", 60, "C: no table"
                )
                start_pos = status(mnt)["current_pos"]
                name = "C mount, pass running, 20 ms apart"
                results.append(sampled(name, mnt / "image", sets[2], pause, mnt))
                mid_pos = status(mnt)["current_pos"]
                ahead = [p for p in sets[3] if p > mid_pos + 16 * MiB]
                name = "D mount, pass running, back to back"
                results.append(sampled(name, mnt / "image", ahead, 0.0, mnt))
                end = status(mnt)
                if end["phase"] != "copying":
                    raise RuntimeError(f"the pass was not running any more: {end['phase']}")
                end_pos = end["current_pos"]

    ms = 1000.0
    rows = []
    for s in results:
        over = [x - model for x in s.latency]
        serve = f"{median(s.serve) * ms:.2f}" if s.serve else ""
        outside = f"{median(s.outside) * ms:.2f}" if s.outside else ""
        rows.append(
            [
                s.name,
                str(len(s.latency)),
                f"{median(s.latency) * ms:.2f}",
                f"{p90(s.latency) * ms:.2f}",
                f"{median(over) * ms:.2f}",
                f"{p90(over) * ms:.2f}",
                serve,
                outside,
            ]
        )
    print()
    print(
        f"4 KiB reads of untried data, positions in the upper half (the pass went from "
        f"{start_pos / MiB:.1f} to {end_pos / MiB:.1f} MiB meanwhile); model time of one "
        f"urgent read {model * ms:.3f} ms; ms:"
    )
    print()
    headers = ["setting", "n", "median", "p90", "median - model", "p90 - model"]
    print_table([*headers, "engine serve", "latency - serve"], rows)
    a, b, c, d = (median(s.latency) for s in results)
    print()
    hand_off, waited = median(results[1].outside), median(results[2].outside)
    print(
        f"outside the engine's serve time: hand-off (B) {hand_off * ms:.2f} ms, hand-off and "
        f"wait for the background read in progress (C) {waited * ms:.2f} ms, so the wait is "
        f"{(waited - hand_off) * ms:.2f} ms; back to back D - B {(d - b) * ms:.2f} ms; "
        f"B - A {(b - a) * ms:.2f} ms; disk overhead A - model {(a - model) * ms:.2f} ms"
    )
    print()
    name = "on-demand 4 KiB"
    c_p90 = p90(results[2].latency)
    return [
        LiveRow(
            name, "median ms, pass running", f"{a * ms:.2f} (disk)", f"{c * ms:.2f}", f"{c / a:.3f}"
        ),
        LiveRow(
            name,
            "median / p90 ms - model, pass running",
            f"{(a - model) * ms:.2f} (disk)",
            f"{(c - model) * ms:.2f} / {(c_p90 - model) * ms:.2f}",
            f"+{(c - a) * ms:.2f} ms",
        ),
        LiveRow(
            name, "median ms, back to back", f"{a * ms:.2f} (disk)", f"{d * ms:.2f}", f"{d / a:.3f}"
        ),
    ]


# ---------------------------------------------------------------------- 3. e2fsck
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


def fsck(path: str | Path) -> tuple[float, int, str]:
    """``e2fsck -fn PATH``: (wall seconds, exit status, the summary after the colon)."""
    t = time.perf_counter()
    res = subprocess.run(["e2fsck", "-fn", str(path)], capture_output=True, text=True)
    wall = time.perf_counter() - t
    last = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else res.stderr
    return wall, res.returncode, last.split(":", 1)[-1].strip()


def fsck_while_rescuing(
    size: int = 256 * MiB,
    rate: str = "20Mi",
    seek_ms: float = 8.0,
    keep: bool = False,
) -> list[LiveRow]:
    """Part 3: ``e2fsck -fn MNT/p1`` on the live mount of a slow disk; print the table."""
    from tests.mountproc import live_mount, status
    from tests.simdisk import read_stats, simulated_disk

    p1_size = size * 200 // 256
    rate_bps = parse_size(rate)
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
        p1_orig = work / "p1.orig"
        with open(image, "rb") as fi, open(p1_orig, "wb") as fo:
            fi.seek(MiB)
            fo.write(fi.read(p1_size))
        t_orig, rc_orig, verdict = fsck(p1_orig)
        print(f"  e2fsck of the original p1 (tmpfs): {t_orig:.3f} s, {verdict}", flush=True)
        with simulated_disk(image, sim, rate=rate, seek_ms=seek_ms, error_ms=50) as disk:
            # reference: e2fsck straight from the failing disk
            with loop_at(disk, MiB, p1_size) as dev:
                s0 = read_stats(disk)
                t_direct, rc_direct, v_direct = fsck(dev)
                s1 = read_stats(disk)
            direct_bytes = s1["bytes"] - s0["bytes"]
            direct_busy = s1["busy_seconds"] - s0["busy_seconds"]
            print(
                f"  e2fsck straight from the disk: {t_direct:.2f} s, {direct_bytes} bytes",
                flush=True,
            )
            # e2fsck on the live mount
            s0 = read_stats(disk)
            t0 = time.monotonic()
            with live_mount(disk, work / "out", work / "map", mnt, "-q"):
                t_mounted = time.monotonic() - t0
                wait_until(lambda: (mnt / "p1").exists(), 60, "p1 did not appear")
                t_p1 = time.monotonic() - t0
                t_live, rc_live, v_live = fsck(mnt / "p1")
                s1 = read_stats(disk)
                st = status(mnt)
                t_fsck_end = time.monotonic() - t0
                print(
                    f"  e2fsck on the live mount: {t_live:.2f} s, finished "
                    f"{st['bytes']['finished']} bytes",
                    flush=True,
                )
                wait_until(lambda: status(mnt)["phase"] == "finished", 3600, "not finished", 0.1)
                t_full = time.monotonic() - t0
                s2 = read_stats(disk)
                st_end = status(mnt)
            same = same_bytes(image, work / "out")
            # the GNU ddrescue way: copy the whole disk, then e2fsck the copy
            s3 = read_stats(disk)
            t3 = time.monotonic()
            subprocess.run(
                ["ddrescue", "-q", disk, str(work / "dd.img"), str(work / "dd.map")], check=True
            )
            t_dd = time.monotonic() - t3
            s4 = read_stats(disk)
            with open(work / "dd.img", "rb") as fi, open(work / "dd.p1", "wb") as fo:
                fi.seek(MiB)
                fo.write(fi.read(p1_size))
            t_ddfsck, rc_dd, v_dd = fsck(work / "dd.p1")
        if (rc_dd, v_dd) != (rc_orig, verdict):
            raise RuntimeError(f"e2fsck after ddrescue: {rc_dd} {v_dd!r}")
        if (rc_direct, v_direct) != (rc_orig, verdict) or (rc_live, v_live) != (rc_orig, verdict):
            raise RuntimeError(
                f"e2fsck verdicts differ: original {rc_orig} {verdict!r}, direct {rc_direct} "
                f"{v_direct!r}, live {rc_live} {v_live!r}"
            )
        if not same:
            raise RuntimeError("the rescued image differs from the disk")

    read_at_end = s1["bytes"] - s0["bytes"]
    finished = st["bytes"]["finished"]
    model_full = size / rate_bps
    od = st["ondemand"]
    rows = [
        ["e2fsck -fn on the original p1 (tmpfs)", f"{t_orig:.3f}", "", "", ""],
        [
            "e2fsck -fn straight from the disk (loop)",
            f"{t_direct:.2f}",
            f"{direct_bytes / MiB:.1f}",
            f"{direct_bytes / size:.3f}",
            f"{direct_busy:.2f}",
        ],
        [
            f"e2fsck -fn MNT/p1, live mount (p1 after {t_p1:.2f} s)",
            f"{t_live:.2f}",
            f"{read_at_end / MiB:.1f}",
            f"{read_at_end / size:.3f}",
            f"{s1['busy_seconds'] - s0['busy_seconds']:.2f}",
        ],
        [
            "  of which finished in the map at the end",
            "",
            f"{finished / MiB:.1f}",
            f"{finished / size:.3f}",
            "",
        ],
        [
            "full rescue by the same mount (to 'finished')",
            f"{t_full:.2f}",
            f"{(s2['bytes'] - s0['bytes']) / MiB:.1f}",
            f"{(s2['bytes'] - s0['bytes']) / size:.3f}",
            f"{s2['busy_seconds'] - s0['busy_seconds']:.2f}",
        ],
        [
            "GNU ddrescue of the whole disk, then e2fsck -fn",
            f"{t_dd + t_ddfsck:.2f}",
            f"{(s4['bytes'] - s3['bytes']) / MiB:.1f}",
            f"{(s4['bytes'] - s3['bytes']) / size:.3f}",
            f"{s4['busy_seconds'] - s3['busy_seconds']:.2f}",
        ],
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
    print(
        f"mounted after {t_mounted:.2f} s; e2fsck ended {t_fsck_end:.2f} s after the start; "
        f"on-demand at that point: {od['reads']} reads, {od['timeouts']} timeouts, "
        f"{od['readahead_requests']} read-aheads, {od['served']} served in "
        f"{od['serve_seconds']:.2f} s; final: {st_end['ondemand']['served']} served, "
        f"{st_end['reads']} engine reads"
    )
    print()
    return [
        LiveRow(
            "e2fsck 256 MiB disk",
            "share of disk read at e2fsck end",
            "1.000 (full)",
            f"{read_at_end / size:.3f}",
            f"{read_at_end / size:.3f}",
        ),
        LiveRow(
            "e2fsck 256 MiB disk",
            "wall s: e2fsck live vs full rescue",
            f"{t_full:.2f}",
            f"{t_live:.2f}",
            f"{t_live / t_full:.3f}",
        ),
        LiveRow(
            "e2fsck 256 MiB disk",
            "wall s to the e2fsck verdict: ddrescue+e2fsck vs live",
            f"{t_dd + t_ddfsck:.2f}",
            f"{t_live:.2f}",
            f"{t_live / (t_dd + t_ddfsck):.3f}",
        ),
        LiveRow(
            "e2fsck 256 MiB disk",
            "wall s: e2fsck live vs straight",
            f"{t_direct:.2f}",
            f"{t_live:.2f}",
            f"{t_live / t_direct:.3f}",
        ),
    ]


# ---------------------------------------------------------------------- all
def run(
    parts: Sequence[str] = PARTS,
    rounds: int = 5,
    size: int = GiB,
    samples: int = 50,
    keep: bool = False,
) -> list[LiveRow]:
    """Run the selected parts, print their tables and return the summary rows."""
    rows: list[LiveRow] = []
    if "sequential" in parts:
        rows += sequential(size, rounds, keep)
    if "ondemand" in parts:
        rows += ondemand(samples=samples, keep=keep)
    if "fsck" in parts:
        rows += fsck_while_rescuing(keep=keep)
    return rows


def print_summary(rows: Sequence[LiveRow]) -> None:
    print_table(LiveRow.headers(), [r.row() for r in rows])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=list(PARTS), choices=PARTS, help="parts to run")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the sequential part [5]")
    ap.add_argument("--size", default="1Gi", help="input of the sequential part [1Gi]")
    ap.add_argument("--samples", type=int, default=50, help="samples per on-demand setting [50]")
    ap.add_argument("--keep", action="store_true", help="keep the scratch files")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [BARE_FLAG]:
        return serve_bare(argv[1], argv[2])
    args = ap.parse_args(argv)
    try:
        rows = run(args.only, args.rounds, parse_size(args.size), args.samples, args.keep)
    finally:
        if not args.keep:
            remove_scratch()
    print("Live mount summary:")
    print()
    print_summary(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
