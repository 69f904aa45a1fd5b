"""Dead-head rescues through a real I/O path: the helpers of ``tests/test_deadhead_realio.py``
and ``bench/deadhead_realio.py``.

A rescue runs twice: in test mode (``-H TESTMAP`` on the image file, no disk at all), which
predicts it, and for real, through ``ddfs simulate --bad TESTMAP`` (a FUSE file whose reads of
the ``-*/`` blocks fail with EIO after the modelled time) and a read-only loop device on it: the
kernel's block path and real errnos. Each real run gets a fresh simulator (its counters start
at zero and its head at 0) and a fresh loop device, cleaned up in ``finally`` by
:mod:`tests.simdisk` (unmount, detach, end the process by its handle).

The tools read with direct I/O (``-d``): then every read reaches the simulator as one request,
except that the block layer may cut a read of more than 512 KiB into contiguous parts: a loop
device takes at most 128 segments per request, and a segment is one page, or up to 64 KiB of
pages adjacent in physical memory. Where it cuts depends on where the tool's buffer pages
happen to lie, so it changes from run to run (a 2 MiB read was seen as 4 parts of 512 KiB, or
as 512, 644, 512 and 380 KiB).
:func:`group_requests` puts the parts back together, so the disk's log is compared with the
tool's ``--log-reads`` read for read. A good read cut in parts costs the model the same time
(the parts are contiguous: no seek); a failed one may cost more: a part after the first bad
one is another failed read (one more error time) or data read in vain
(:func:`cut_failed_cost` bounds it). Without ``-d`` the reads go through the page cache as
4 KiB requests plus read-ahead, and the disk sees another read pattern altogether.

Disk time is the simulator's model (``ddfs/simulate/disk.py``) replayed over requests
(:func:`disk_times`); replayed over the simulator's own log it equals its ``busy_seconds``.
"Before all good data" counts up to the last read that copied data (its last part).
"""

from __future__ import annotations

import filecmp
import gzip
import subprocess
import time
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddfs.simulate.disk import FailingDisk
from engine.map.mapfile import parse_mapfile, parse_mapfile_text
from tests.simdisk import loop_device, read_stats, simulate_process

ROOT = Path(__file__).resolve().parent.parent
MAP_DIRS = (ROOT / "tests" / "data" / "deadhead", ROOT / "bench" / "data" / "deadhead")


# ------------------------------------------------------------------ test maps
def load_map(name: str) -> str:
    """The text of the dead-head test map ``name`` (``d01``..``d10``, ``g1``..``g3``)."""
    for folder in MAP_DIRS:
        path = folder / f"{name}.map.gz"
        if path.exists():
            return gzip.decompress(path.read_bytes()).decode()
    raise FileNotFoundError(f"no dead-head map {name}")


def cut_map(text: str, limit: int | None = None) -> tuple[str, int]:
    """The test map ``text`` cut after the first ``+`` block that ends at or past ``limit``
    (None: the whole map, up to its last ``+`` block). Returns the map and its size.

    A cut map ends in a ``+`` block, so test mode's input size (cut to the end of the last
    ``+`` block) is the image's size, as the loop device's is.
    """
    blocks = list(parse_mapfile_text(text).bmap)
    kept: list[tuple[int, int, str]] = []
    end = 0
    for pos, size, status in blocks:
        kept.append((pos, size, status))
        if status == "+":
            end = len(kept)
            if limit is not None and pos + size >= limit:
                break
    kept = kept[:end]
    body = "".join(f"0x{p:08X}  0x{s:08X}  {c}\n" for p, s, c in kept)
    size = kept[-1][0] + kept[-1][1] if kept else 0
    return f"# dead-head test map (cut)\n0x00000000     +               1\n{body}", size


# ------------------------------------------------------------------ logs
@dataclass(frozen=True)
class Read:
    """One line of a tool's ``--log-reads``: ``copied`` and ``error`` bytes."""

    pos: int
    size: int
    copied: int
    error: int

    @property
    def ok(self) -> bool:
        return self.error == 0


@dataclass(frozen=True)
class Request:
    """One line of ``ddfs simulate --log-reads``: a request as the disk saw it."""

    pos: int
    size: int
    ok: bool


def tool_reads(log: Path) -> list[Read]:
    """The reads of a ddrescue-format ``--log-reads`` file, in order."""
    out = []
    for line in log.read_text().splitlines():
        if line.startswith("0x"):
            pos, size, copied, error = (int(f, 0) for f in line.split()[:4])
            out.append(Read(pos, size, copied, error))
    return out


def disk_requests(log: Path) -> list[Request]:
    """The requests of a ``ddfs simulate --log-reads`` file (``pos size ok|error``)."""
    out = []
    for line in log.read_text().splitlines():
        pos, size, result = line.split()
        out.append(Request(int(pos), int(size), result == "ok"))
    return out


def group_requests(reads: Sequence[Read], requests: Sequence[Request]) -> list[list[Request]]:
    """The disk's requests, grouped by the tool's read they are parts of (see the module
    docstring).

    Raises:
        ValueError: the disk saw something else than the tool's reads, in another order.
    """
    groups, i = [], 0
    for read in reads:
        group, pos = [], read.pos
        while pos < read.pos + read.size:
            if i >= len(requests) or requests[i].pos != pos:
                got = requests[i] if i < len(requests) else "nothing"
                raise ValueError(f"read {read}: the disk saw {got} at request {i}")
            group.append(requests[i])
            pos += requests[i].size
            i += 1
        groups.append(group)
    if i != len(requests):
        raise ValueError(f"{len(requests) - i} requests more than the tool's reads")
    return groups


def merged(group: Sequence[Request]) -> Request:
    """The parts of one read as one request: it failed if a part failed."""
    return Request(group[0].pos, sum(q.size for q in group), all(q.ok for q in group))


def as_made(reads: Sequence[Read]) -> list[Request]:
    """The tool's reads as the requests a disk would see if none were cut."""
    return [Request(r.pos, r.size, r.ok) for r in reads]


# ------------------------------------------------------------------ figures
@dataclass(frozen=True)
class Model:
    """The simulator's latency model: bytes/s (0: instantaneous), seconds per seek and per
    failed read."""

    rate: int
    seek_s: float
    error_s: float

    def scaled(self, factor: float) -> Model:
        """The same disk, ``factor`` times as fast a clock (rate / factor, times * factor)."""
        rate = round(self.rate / factor) if self.rate else 0
        return Model(rate, self.seek_s * factor, self.error_s * factor)

    def options(self) -> dict[str, Any]:
        """``ddfs simulate``'s options for this model (keywords of ``simulate_argv``)."""
        return {
            "rate": str(self.rate),
            "seek_ms": repr(self.seek_s * 1000),
            "error_ms": repr(self.error_s * 1000),
        }


def disk_times(requests: Iterable[Request], testmap: Path, size: int, model: Model) -> list[float]:
    """The model's disk time from a fresh disk (head at 0) at the end of each request."""
    bad = parse_mapfile(str(testmap)).bmap
    disk = FailingDisk(size, bad, model.rate, model.seek_s, model.error_s)
    times = []
    for q in requests:
        disk.plan_read(q.pos, q.size)
        times.append(disk.busy_seconds)
    return times


@dataclass(frozen=True)
class Figures:
    """Reads and failed reads, in all and before all good data, and the disk seconds."""

    reads: int
    failed: int
    reads_before_good: int
    failed_before_good: int
    seconds_before_good: float
    seconds: float


def figures(
    reads: Sequence[Read],
    testmap: Path,
    size: int,
    model: Model,
    groups: Sequence[Sequence[Request]] | None = None,
) -> Figures:
    """The figures of a tool's read log. The reads are timed as the disk saw them, ``groups``
    (from :func:`group_requests`), or as the tool made them (None). "Before all good data"
    ends with the last part of the last read that copied data."""
    groups = groups if groups is not None else [[q] for q in as_made(reads)]
    times = disk_times((q for g in groups for q in g), testmap, size, model)
    last = max((i for i, r in enumerate(reads) if r.copied), default=-1)
    parts_before = sum(len(g) for g in groups[: last + 1])
    return Figures(
        reads=len(reads),
        failed=sum(not r.ok for r in reads),
        reads_before_good=last + 1,
        failed_before_good=sum(not r.ok for r in reads[: last + 1]),
        seconds_before_good=times[parts_before - 1] if parts_before else 0.0,
        seconds=times[-1] if times else 0.0,
    )


def cut_failed_cost(
    reads: Sequence[Read], groups: Sequence[Sequence[Request]], model: Model
) -> tuple[int, float]:
    """The failed reads the kernel cut in parts, and the most these cuts can add to the disk
    time: each part after the first may be another failed read, or read data that the whole
    read's failure throws away."""
    count, cost = 0, 0.0
    for read, group in zip(reads, groups, strict=False):
        if not read.ok and len(group) > 1:
            count += 1
            cost += (len(group) - 1) * model.error_s + (read.size / model.rate if model.rate else 0)
    return count, cost


# ------------------------------------------------------------------ runs
@dataclass(frozen=True)
class Run:
    """A rescue's outputs: the read log, the final map, the output, and for a real run the
    disk's request log, its stats.json at the end and the tool's wall time."""

    log: Path
    mapfile: Path
    output: Path
    requests: list[Request] | None = None
    stats: dict[str, Any] | None = None
    wall: float = 0.0

    def reads(self) -> list[Read]:
        return tool_reads(self.log)

    def map_lines(self) -> list[str]:
        """The status and block lines of the final map, fields joined by single spaces."""
        lines = self.mapfile.read_text().splitlines()
        return [" ".join(ln.split()) for ln in lines if ln.strip() and not ln.startswith("#")]

    def same_result(self, other: Run) -> bool:
        """Same final map (status line and blocks) and same output bytes."""
        return self.map_lines() == other.map_lines() and filecmp.cmp(
            self.output, other.output, shallow=False
        )


def rescue(tool: Sequence[str], infile: str, work: Path, tag: str) -> Run:
    """Run ``TOOL --log-reads=LOG INFILE OUT MAP`` in ``work``; ``tool`` holds the program
    and its options.

    Raises:
        RuntimeError: the tool failed (the end of its output in the message).
    """
    run = Run(work / f"{tag}.log", work / f"{tag}.map", work / f"{tag}.out")
    for path in (run.log, run.mapfile, run.output):
        path.unlink(missing_ok=True)
    argv = [*tool, f"--log-reads={run.log}", infile, str(run.output), str(run.mapfile)]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False)
    if res.returncode != 0:  # not -q: the message is in the output
        out = (res.stdout + res.stderr)[-2000:]
        raise RuntimeError(f"{' '.join(argv)}: exit {res.returncode}: {out}")
    return run


def predict(tool: Sequence[str], image: Path, testmap: Path, work: Path, tag: str) -> Run:
    """The test-mode run (``-H TESTMAP`` on the image file) that predicts a real one."""
    return rescue([*tool, "-H", str(testmap)], str(image), work, tag)


def real_rescue(
    tool: Sequence[str], image: Path, testmap: Path, work: Path, tag: str, model: Model
) -> Run:
    """The same rescue of the image served by a fresh ``ddfs simulate`` with ``model``,
    through a read-only loop device (read-ahead 0)."""
    mnt, disk_log = work / f"{tag}.mnt", work / f"{tag}.disk.log"
    mnt.mkdir(exist_ok=True)
    disk_log.unlink(missing_ok=True)
    with ExitStack() as stack:
        sim = stack.enter_context(
            simulate_process(image, mnt, testmap, log_reads=str(disk_log), **model.options())
        )
        dev = stack.enter_context(loop_device(sim.disk))
        subprocess.run(["blockdev", "--setra", "0", dev], check=True, capture_output=True)
        start = time.perf_counter()
        run = rescue(tool, dev, work, tag)
        wall = time.perf_counter() - start
        stats = read_stats(sim.disk)
    mnt.rmdir()
    requests = disk_requests(disk_log)
    disk_log.unlink()
    return Run(run.log, run.mapfile, run.output, requests, stats, wall)


def remove_outputs(*runs: Run) -> None:
    """Delete the outputs of finished runs (the images are big)."""
    for run in runs:
        run.output.unlink(missing_ok=True)


def tool_version(exe: str) -> str:
    """The first line of ``EXE --version``."""
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else "?"
