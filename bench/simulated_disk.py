"""Benchmark 3: rescuing a simulated failing disk, GNU ddrescue vs ddfs.

``ddfs simulate IMAGE MNT --bad TESTMAP --rate R --seek-ms S --error-ms E`` serves IMAGE as
``MNT/disk`` through FUSE: reads touching a bad block of TESTMAP fail with EIO, every read
takes the modelled time on one "spindle" (a seek when it does not start where the previous
one ended, the transfer at the rate, the error time on a failure) and ``MNT/stats.json``
counts reads, bytes, errors, seeks and the busy (modelled) seconds.

The image (default 64 MiB of seeded random data) has three bad areas (32 KiB aligned,
32 KiB unaligned, 128 KiB) and scattered bad sectors (default 24 runs of 1-2 sectors). Each
tool rescues ``MNT/disk`` with its defaults (``-q DISK OUT MAP``) from a fresh mount, so the
counters start at zero. Checked: the final maps are equal (status line and blocks), the
outputs are equal, and the rescued data equals the image. The point is disk wear and disk
time: ddfs must make no more reads and use no more busy seconds than ddrescue.

Run: ``.venv/bin/python bench/simulated_disk.py [--size 64Mi] [--scattered 24]``
"""

from __future__ import annotations

import argparse
import filecmp
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    DDFS,
    DDRESCUE,
    KiB,
    MiB,
    Run,
    Summary,
    map_lines,
    parse_size,
    print_table,
    python_env,
    ratio,
    remove_scratch,
    run_measured,
    scratch_dir,
    write_random,
)

SECTOR = 512
TOOLS = ("ddrescue", "ddfs")
STAT_KEYS = ("reads", "errors", "seeks", "bytes", "busy_seconds")


def bad_areas(size: int, scattered: int, seed: int = 3) -> list[tuple[int, int]]:
    """Three bad areas plus ``scattered`` isolated bad runs of 1-2 sectors, sorted."""
    areas = [(size // 4, 32 * KiB), (size // 2 + 0x8200, 32 * KiB), (size * 3 // 4, 128 * KiB)]
    rng = random.Random(seed)
    while len(areas) < 3 + scattered:
        pos = rng.randrange(0, size // SECTOR - 2) * SECTOR
        n = rng.randint(1, 2) * SECTOR
        # keep 4 KiB of good data around each run, so runs stay separate bad areas
        if all(pos + n + 4 * KiB <= p or p + s + 4 * KiB <= pos for p, s in areas):
            areas.append((pos, n))
    return sorted(areas)


def write_test_map(path: Path, size: int, areas: list[tuple[int, int]]) -> None:
    """A ddrescue map: ``-`` for the bad areas, ``+`` for everything else."""
    lines = ["# test map for bench/simulated_disk.py\n", "0x00000000     +               1\n"]
    pos = 0
    for p, n in areas:
        if p > pos:
            lines.append(f"0x{pos:08X}  0x{p - pos:08X}  +\n")
        lines.append(f"0x{p:08X}  0x{n:08X}  -\n")
        pos = p + n
    if pos < size:
        lines.append(f"0x{pos:08X}  0x{size - pos:08X}  +\n")
    path.write_text("".join(lines))


def rescue_on_simulator(
    tool: str, image: Path, mnt: Path, testmap: Path, work: Path, model: dict[str, Any]
) -> tuple[Run, dict[str, Any]]:
    """Mount a fresh simulator, let ``tool`` rescue its disk, return the run and stats.json."""
    from tests.simdisk import read_stats, simulated_disk

    out, mapfile = work / f"out.{tool}", work / f"map.{tool}"
    out.unlink(missing_ok=True)
    mapfile.unlink(missing_ok=True)
    # simulated_disk unmounts in finally and ends the simulator by its handle (its PID)
    with simulated_disk(image, mnt, testmap, **model) as disk:
        if tool == "ddrescue":
            r = run_measured([DDRESCUE, "-q", disk, str(out), str(mapfile)])
        else:
            r = run_measured([DDFS, "rescue", "-q", disk, str(out), str(mapfile)], env=python_env())
        stats = read_stats(disk)
    return r, stats


def check_rescued(image: Path, out: Path, mapfile: Path) -> None:
    """Every ``+`` block of the map holds the image's bytes in the output."""
    _, blocks = map_lines(mapfile)
    with open(image, "rb") as fi, open(out, "rb") as fo:
        for line in blocks:
            pos_s, size_s, status = line.split()
            if status != "+":
                continue
            pos, size = int(pos_s, 0), int(size_s, 0)
            fi.seek(pos)
            fo.seek(pos)
            if fi.read(size) != fo.read(size):
                raise RuntimeError(f"{out}: rescued block at {pos:#x} differs from the image")


Results = dict[str, tuple[Run, dict[str, Any]]]  # tool -> (its run, stats.json after it)


def counter_rows(results: Results) -> list[list[str]]:
    """The table rows: each stats.json counter, the wall and CPU times, ddrescue vs ddfs."""
    rows = []
    for key in (*STAT_KEYS, "wall s", "wall - busy s", "tool CPU s"):
        if key == "tool CPU s":
            a, b = (results[t][0].user + results[t][0].sys for t in TOOLS)
        elif key == "wall s":
            a, b = results["ddrescue"][0].wall, results["ddfs"][0].wall
        elif key == "wall - busy s":
            a, b = (results[t][0].wall - results[t][1]["busy_seconds"] for t in TOOLS)
        else:
            a, b = results["ddrescue"][1][key], results["ddfs"][1][key]
        fmt = "{:.2f}" if isinstance(a, float) else "{}"
        rows.append([key, fmt.format(a), fmt.format(b), f"{ratio(b, a):.3f}"])
    return rows


def summary_rows(results: Results, maps_equal: bool) -> list[Summary]:
    """The summary rows: reads and busy seconds (ddfs must not use more), wall time."""
    sa, sb = results["ddrescue"][1], results["ddfs"][1]
    verdict = (
        "ok"
        if sb["reads"] <= sa["reads"] and sb["busy_seconds"] <= sa["busy_seconds"] + 1e-6
        else "MORE"
    )
    return [
        Summary(
            "simulated disk",
            "reads / busy s",
            f"{sa['reads']} / {sa['busy_seconds']:.2f}",
            f"{sb['reads']} / {sb['busy_seconds']:.2f}",
            f"{ratio(sb['reads'], sa['reads']):.3f} / "
            f"{ratio(sb['busy_seconds'], sa['busy_seconds']):.3f} ({verdict})",
        ),
        Summary(
            "simulated disk",
            "wall s; maps equal",
            f"{results['ddrescue'][0].wall:.2f}",
            f"{results['ddfs'][0].wall:.2f}",
            f"{ratio(results['ddfs'][0].wall, results['ddrescue'][0].wall):.3f}; "
            f"{'yes' if maps_equal else 'NO'}",
        ),
    ]


@dataclass
class Outcome:
    """What the two rescues gave: each tool's run and stats.json, the final maps, the checks."""

    results: Results
    maps: dict[str, tuple[str, list[str]]]  # tool -> (status line, block lines)
    outputs_equal: bool
    n_areas: int  # bad areas of the test map
    bad_bytes: int  # bad bytes of the test map
    final_bad: int  # bad bytes left in ddfs's final map

    @property
    def maps_equal(self) -> bool:
        return self.maps["ddrescue"] == self.maps["ddfs"]


def rescue_both(work: Path, size: int, scattered: int, model: dict[str, Any]) -> Outcome:
    """Build the image and test map; let each tool rescue a fresh simulator; check the results."""
    image, testmap, mnt = work / "image", work / "test.map", work / "mnt"
    mnt.mkdir()
    write_random(image, size, seed=5)
    areas = bad_areas(size, scattered)
    write_test_map(testmap, size, areas)
    bad_bytes = sum(n for _, n in areas)
    print(
        f"simulated disk: {size / MiB:g} MiB image, {len(areas)} bad areas "
        f"({bad_bytes} bytes), rate {model['rate']}/s, seek {model['seek_ms']} ms, "
        f"error {model['error_ms']} ms",
        flush=True,
    )
    results: Results = {}
    for tool in TOOLS:
        results[tool] = rescue_on_simulator(tool, image, mnt, testmap, work, model)
        r, st = results[tool]
        print(
            f"  {tool:8s} {r.wall:7.2f} s wall, {st['reads']} reads, "
            f"{st['busy_seconds']:.2f} busy s",
            flush=True,
        )
    maps = {t: map_lines(work / f"map.{t}") for t in TOOLS}
    outputs_equal = filecmp.cmp(work / "out.ddrescue", work / "out.ddfs", shallow=False)
    for tool in TOOLS:
        check_rescued(image, work / f"out.{tool}", work / f"map.{tool}")
    final_bad = sum(int(line.split()[1], 0) for line in maps["ddfs"][1] if line.endswith("-"))
    return Outcome(results, maps, outputs_equal, len(areas), bad_bytes, final_bad)


def run(
    size: int = 64 * MiB,
    scattered: int = 24,
    rate: str = "200Mi",
    seek_ms: float = 8.0,
    error_ms: float = 50.0,
    keep: bool = False,
) -> list[Summary]:
    """Run the benchmark, print its tables and return the summary rows."""
    model = {"rate": rate, "seek_ms": seek_ms, "error_ms": error_ms}
    with scratch_dir("simulated_disk", keep) as work:
        out = rescue_both(work, size, scattered, model)
    results, maps, maps_equal = out.results, out.maps, out.maps_equal
    print()
    print(f"Rescue of a simulated failing disk ({size / MiB:g} MiB, {out.n_areas} bad areas):")
    print()
    print_table(["counter", "GNU ddrescue", "ddfs", "ddfs / ddrescue"], counter_rows(results))
    print()
    sizes = {t: results[t][1].get("read_sizes", {}) for t in TOOLS}
    print(f"read sizes (bytes: count): ddrescue {sizes['ddrescue']}, ddfs {sizes['ddfs']}")
    print(
        f"final maps {'equal' if maps_equal else 'DIFFER'}; outputs "
        f"{'equal' if out.outputs_equal else 'DIFFER'}; bad bytes left {out.final_bad} "
        f"(test map: {out.bad_bytes})"
    )
    if not maps_equal:
        print(f"  ddrescue status {maps['ddrescue'][0]!r}, ddfs status {maps['ddfs'][0]!r}")
    print()
    return summary_rows(results, maps_equal)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="64Mi", help="image size [64Mi]")
    ap.add_argument("--scattered", type=int, default=24, help="scattered bad sectors [24]")
    ap.add_argument("--rate", default="200Mi", help="transfer rate, bytes/s [200Mi]")
    ap.add_argument("--seek-ms", type=float, default=8.0, help="seek time [8]")
    ap.add_argument("--error-ms", type=float, default=50.0, help="extra time of an error [50]")
    ap.add_argument("--keep", action="store_true", help="keep the scratch files")
    args = ap.parse_args(argv)
    try:
        run(
            parse_size(args.size),
            args.scattered,
            args.rate,
            args.seek_ms,
            args.error_ms,
            args.keep,
        )
    finally:
        if not args.keep:
            remove_scratch()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
