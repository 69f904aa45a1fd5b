"""Part 2 of the live-mount benchmark (``bench/live_mount.py``): on-demand read latency.

The latency of a 4 KiB read of data not tried yet, on a disk served by ``ddfs simulate``:
(A) straight from the disk, (B) through a ``ddfs mount`` whose engine is idle, (C) through a
mount whose copying pass runs, 20 ms between samples, (D) the same, back to back. Every sample
is checked against the image, and the simulator must count one 4096-byte read per sample. See
the docstring of ``bench/live_mount.py`` for the whole method.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    KiB,
    MiB,
    median,
    parse_size,
    print_table,
    scratch_dir,
    write_random,
)
from bench.live_common import LiveRow, ddfs_environment, p90, wait_until

MS = 1000.0


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


def sampled(
    disk: str, image: Path, name: str, path: Path, where: list[int], gap: float, live: Path | None
) -> Samples:
    """time_reads, checked: exactly one 4096-byte disk read per sample meanwhile."""
    from tests.simdisk import read_stats

    n0 = int(read_stats(disk)["read_sizes"].get("4096", 0))
    res = time_reads(path, where, image, gap, live)
    res.name = name
    n = int(read_stats(disk)["read_sizes"].get("4096", 0)) - n0
    if live is not None and n != len(res.latency):
        raise RuntimeError(f"{name}: {n} reads of 4096 bytes, {len(res.latency)} samples")
    return res


def run_settings(
    disk: str, image: Path, work: Path, sets: list[list[int]], pause: float
) -> tuple[list[Samples], int, int]:
    """Settings A to D on ``disk``; return their samples and where the pass was (C start, end)."""
    from tests.mountproc import live_mount, status

    mnt = work / "mnt"
    results: list[Samples] = []
    # (A) straight from the simulated disk
    results.append(sampled(disk, image, "A disk direct", Path(disk), sets[0], pause, None))
    # (B) through a mount whose schedule is over (-s 1Mi): the engine is idle
    with live_mount(disk, work / "out.b", work / "map.b", mnt, "-q", "-s", "1Mi"):
        wait_until(lambda: status(mnt)["phase"] == "finished", 60, "B: not finished")
        name = "B mount, engine idle"
        results.append(sampled(disk, image, name, mnt / "image", sets[1], pause, mnt))
    # (C), (D) through a mount whose copying pass runs
    with live_mount(disk, work / "out.c", work / "map.c", mnt, "-q"):
        wait_until(lambda: status(mnt)["partition_table"] != "not read yet", 60, "C: no table")
        start_pos = status(mnt)["current_pos"]
        name = "C mount, pass running, 20 ms apart"
        results.append(sampled(disk, image, name, mnt / "image", sets[2], pause, mnt))
        mid_pos = status(mnt)["current_pos"]
        ahead = [p for p in sets[3] if p > mid_pos + 16 * MiB]
        name = "D mount, pass running, back to back"
        results.append(sampled(disk, image, name, mnt / "image", ahead, 0.0, mnt))
        end = status(mnt)
        if end["phase"] != "copying":
            raise RuntimeError(f"the pass was not running any more: {end['phase']}")
        end_pos = end["current_pos"]
    return results, start_pos, end_pos


def latency_row(s: Samples, model: float) -> list[str]:
    """One row of the latency table (ms)."""
    over = [x - model for x in s.latency]
    serve = f"{median(s.serve) * MS:.2f}" if s.serve else ""
    outside = f"{median(s.outside) * MS:.2f}" if s.outside else ""
    return [
        s.name,
        str(len(s.latency)),
        f"{median(s.latency) * MS:.2f}",
        f"{p90(s.latency) * MS:.2f}",
        f"{median(over) * MS:.2f}",
        f"{p90(over) * MS:.2f}",
        serve,
        outside,
    ]


def print_ondemand(results: list[Samples], model: float, start_pos: int, end_pos: int) -> None:
    """The latency table of part 2 and the breakdown of the time outside the engine."""
    rows = [latency_row(s, model) for s in results]
    print()
    print(
        f"4 KiB reads of untried data, positions in the upper half (the pass went from "
        f"{start_pos / MiB:.1f} to {end_pos / MiB:.1f} MiB meanwhile); model time of one "
        f"urgent read {model * MS:.3f} ms; ms:"
    )
    print()
    headers = ["setting", "n", "median", "p90", "median - model", "p90 - model"]
    print_table([*headers, "engine serve", "latency - serve"], rows)
    a, b, _c, d = (median(s.latency) for s in results)
    print()
    hand_off, waited = median(results[1].outside), median(results[2].outside)
    print(
        f"outside the engine's serve time: hand-off (B) {hand_off * MS:.2f} ms, hand-off and "
        f"wait for the background read in progress (C) {waited * MS:.2f} ms, so the wait is "
        f"{(waited - hand_off) * MS:.2f} ms; back to back D - B {(d - b) * MS:.2f} ms; "
        f"B - A {(b - a) * MS:.2f} ms; disk overhead A - model {(a - model) * MS:.2f} ms"
    )
    print()


def ondemand_rows(results: list[Samples], model: float) -> list[LiveRow]:
    """The summary rows of part 2: settings C and D against A (straight from the disk)."""
    a, _b, c, d = (median(s.latency) for s in results)
    name = "on-demand 4 KiB"
    c_p90 = p90(results[2].latency)
    return [
        LiveRow(
            name, "median ms, pass running", f"{a * MS:.2f} (disk)", f"{c * MS:.2f}", f"{c / a:.3f}"
        ),
        LiveRow(
            name,
            "median / p90 ms - model, pass running",
            f"{(a - model) * MS:.2f} (disk)",
            f"{(c - model) * MS:.2f} / {(c_p90 - model) * MS:.2f}",
            f"+{(c - a) * MS:.2f} ms",
        ),
        LiveRow(
            name, "median ms, back to back", f"{a * MS:.2f} (disk)", f"{d * MS:.2f}", f"{d / a:.3f}"
        ),
    ]


def ondemand(
    size: int = 256 * MiB,
    samples: int = 50,
    rate: str = "100Mi",
    seek_ms: float = 8.0,
    pause: float = 0.02,
    keep: bool = False,
) -> list[LiveRow]:
    """Part 2: latency of 4 KiB reads of untried data; print the tables."""
    from tests.simdisk import simulated_disk

    rate_bps = parse_size(rate)
    model = seek_ms / 1000 + 4096 / rate_bps
    rng = random.Random(17)
    positions = sample_positions(size, 4 * samples, rng)
    sets = [positions[i * samples : (i + 1) * samples] for i in range(4)]
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
            results, start_pos, end_pos = run_settings(disk, image, work, sets, pause)
    print_ondemand(results, model, start_pos, end_pos)
    return ondemand_rows(results, model)
