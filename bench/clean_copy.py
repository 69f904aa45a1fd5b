"""Benchmark 1: a clean copy of a file of random data on tmpfs, GNU ddrescue vs ddfs.

Both tools copy the same input (default 1 GiB on ``/dev/shm``) with ``-q IN OUT MAP``; they run
alternately, round after round (the order flips every round), each time with a fresh mapfile
and an output that is already full-size from the warm-up run, so that tmpfs page allocation
does not dominate (see docs/ddrescue-behaviour.md §6 M). Reported: the median wall time, the
throughput, CPU times and peak RSS, and the ratio ddfs / ddrescue of the median times. The
outputs are checked byte for byte against the input and the final maps against each other.

Run: ``.venv/bin/python bench/clean_copy.py [--size 1Gi] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import filecmp
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    DDFS,
    DDRESCUE,
    GiB,
    Run,
    Summary,
    map_lines,
    median,
    mib_per_s,
    parse_size,
    print_table,
    python_env,
    ratio,
    remove_scratch,
    run_measured,
    scratch_dir,
    write_random,
)

TOOLS = ("ddrescue", "ddfs")


def copy_run(tool: str, infile: Path, outfile: Path, mapfile: Path) -> Run:
    """One measured ``-q IN OUT MAP`` run of ``tool``."""
    if tool == "ddrescue":
        return run_measured([DDRESCUE, "-q", str(infile), str(outfile), str(mapfile)])
    cmd = [DDFS, "rescue", "-q", str(infile), str(outfile), str(mapfile)]
    return run_measured(cmd, env=python_env())


def copy_rounds(
    work: Path, size: int, rounds: int
) -> tuple[dict[str, list[Run]], list[float], tuple[str, str]]:
    """Write the input, warm up, copy in interleaved rounds and check the results.

    Returns the runs of each tool, the start-up times of ``ddfs --version`` and the status
    lines of the final maps (ddrescue's, ddfs's).
    """
    infile = work / "in"
    print(f"clean copy: writing {size / GiB:g} GiB of random data to {infile}", flush=True)
    write_random(infile, size)
    outs = {t: work / f"out.{t}" for t in TOOLS}
    maps = {t: work / f"map.{t}" for t in TOOLS}
    # warm-up, not counted: makes both outputs full-size and warms the caches
    for tool in TOOLS:
        copy_run(tool, infile, outs[tool], maps[tool])
    runs: dict[str, list[Run]] = {t: [] for t in TOOLS}
    for rnd in range(rounds):
        order = TOOLS if rnd % 2 == 0 else TOOLS[::-1]
        for tool in order:
            maps[tool].unlink(missing_ok=True)
            r = copy_run(tool, infile, outs[tool], maps[tool])
            runs[tool].append(r)
            print(f"  round {rnd + 1} {tool:8s} {r.wall:6.3f} s", flush=True)
    startup = [run_measured([DDFS, "--version"], env=python_env()).wall for _ in range(rounds)]
    for tool in TOOLS:
        if not filecmp.cmp(infile, outs[tool], shallow=False):
            raise RuntimeError(f"{tool}: the output differs from the input")
    (st_a, bl_a), (st_b, bl_b) = (map_lines(maps[t]) for t in TOOLS)
    maps_equal = bl_a == bl_b
    if not maps_equal:
        raise RuntimeError(f"final maps differ: {bl_a[:5]} vs {bl_b[:5]}")
    return runs, startup, (st_a, st_b)


def tool_row(tool: str, rs: list[Run], size: int) -> list[str]:
    """One row of the table: medians (and the range of wall times) of one tool's runs."""
    walls = [r.wall for r in rs]
    med = median(walls)
    return [
        tool,
        f"{med:.3f}",
        f"{min(walls):.3f}-{max(walls):.3f}",
        f"{mib_per_s(size, med):.0f}",
        f"{median([r.user for r in rs]):.3f}",
        f"{median([r.sys for r in rs]):.3f}",
        f"{median([r.user + r.sys for r in rs]):.3f}",
        f"{max(r.maxrss_kb for r in rs) / 1024:.1f}",
    ]


def run(size: int = GiB, rounds: int = 5, keep: bool = False) -> list[Summary]:
    """Run the benchmark, print its tables and return the summary rows."""
    with scratch_dir("clean_copy", keep) as work:
        runs, startup, (st_a, st_b) = copy_rounds(work, size, rounds)

    med = {tool: median([r.wall for r in runs[tool]]) for tool in TOOLS}
    cpu = {tool: median([r.user + r.sys for r in runs[tool]]) for tool in TOOLS}
    rows = [tool_row(tool, runs[tool], size) for tool in TOOLS]
    print()
    print(f"Clean copy of {size / GiB:g} GiB on tmpfs, {rounds} interleaved rounds (medians):")
    print()
    headers = ["tool", "wall s", "range s", "MiB/s", "user s", "sys s", "CPU s", "max RSS MiB"]
    print_table(headers, rows)
    r_time = ratio(med["ddfs"], med["ddrescue"])
    print()
    r_cpu = ratio(cpu["ddfs"], cpu["ddrescue"])
    print(f"ratio ddfs/ddrescue: median wall time {r_time:.2f}, median CPU time {r_cpu:.2f}")
    print(f"ddfs interpreter start-up (`ddfs --version`, median): {median(startup):.3f} s")
    status_note = "equal" if st_a == st_b else f"differ: ddrescue '{st_a}', ddfs '{st_b}'"
    print(f"outputs equal the input; block lists equal; status lines {status_note}")
    print()
    return [
        Summary(
            "clean copy 1 GiB",
            "median wall s (MiB/s)",
            f"{med['ddrescue']:.3f} ({mib_per_s(size, med['ddrescue']):.0f})",
            f"{med['ddfs']:.3f} ({mib_per_s(size, med['ddfs']):.0f})",
            f"{r_time:.2f}",
        ),
        Summary(
            "clean copy 1 GiB",
            "median CPU s (user+sys)",
            f"{cpu['ddrescue']:.3f}",
            f"{cpu['ddfs']:.3f}",
            f"{r_cpu:.2f}",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1Gi", help="input size, e.g. 1Gi, 256Mi [1Gi]")
    ap.add_argument("--rounds", type=int, default=5, help="runs of each tool [5]")
    ap.add_argument("--keep", action="store_true", help="keep the scratch files")
    args = ap.parse_args(argv)
    try:
        run(parse_size(args.size), args.rounds, args.keep)
    finally:
        if not args.keep:
            remove_scratch()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
