"""Dead heads through a real I/O path: ddfs against GNU ddrescue 1.27 (and 1.30), side by side.

The dead-head test maps of ``tests/data/deadhead`` (made by ddrescue 1.30's ``ddrescuelog
--make-test``) over images of seeded random bytes. Each tool rescues each image twice, with the
same options (``-d -n``; ddfs also ``--no-metadata-first``, which its test mode implies):

* in test mode (``-H TESTMAP`` on the image file): the prediction;
* for real: the image served by a fresh ``ddfs simulate --bad TESTMAP`` with latency, through a
  read-only loop device (read-ahead 0), so reads go through the kernel's block path and fail
  with the driver's EIO.

Checked for every real run ("= test mode"): the same final map, output bytes and read log as
the prediction; the disk saw the tool's reads and nothing else (parts of a read the block
layer cut are put together again, see ``tests/deadhead_io.py``); and the model's time replayed
over the disk's requests equals the simulator's ``busy_seconds``. A failed read cut in parts
may cost the disk more than test mode predicts: ``yes (N cut: +S s)`` says how many failed
reads before all good data were cut, and what they cost beyond the prediction. The
simulator sleeps the model's time for real, so it runs a faster disk (``--time-scale``); the
seconds printed are the full model's, replayed over the disk's requests (the tools' schedules
never look at the clock, so the scale changes no read). "Before all good data" counts up to
the last read that copied data.

    .venv/bin/python bench/deadhead_realio.py [--only d01 d07 ...] [--limit BYTES]
        [--rate 200Mi] [--seek-ms 8] [--error-ms 50] [--time-scale 0.01] [--no-130]

Needs root (loop devices), FUSE and GNU ddrescue 1.27; ddrescue 1.30 is run when
``/work/ddr130/bin/ddrescue`` (or ``$DDRESCUE_130``) exists. Scratch files go to
``$DDFS_BENCH_DIR`` (default ``/dev/shm/ddfs-bench``) and are removed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DDFS, DDRESCUE, parse_size, print_table, scratch_dir, write_random
from tests.deadhead_io import (
    Figures,
    Model,
    Request,
    Run,
    as_made,
    cut_failed_cost,
    cut_map,
    disk_times,
    figures,
    group_requests,
    load_map,
    merged,
    predict,
    real_rescue,
    remove_outputs,
    tool_version,
)

MAPS = [f"d{n:02d}" for n in range(1, 11)]
DDRESCUE_130 = os.environ.get("DDRESCUE_130", "/work/ddr130/bin/ddrescue")
OPTIONS = ["-d", "-n"]


@dataclass(frozen=True)
class Row:
    """One tool on one map: its figures (full model), wall time and the checks."""

    map: str
    tool: str
    figures: Figures
    wall: float
    check: str


def tools(with_130: bool) -> dict[str, list[str]]:
    """The tools by label, with their options (as a user would give them)."""
    out = {
        "ddrescue 1.27": [DDRESCUE, *OPTIONS],
        "ddfs": [DDFS, "rescue", *OPTIONS, "--no-metadata-first"],
    }
    if with_130 and os.access(DDRESCUE_130, os.X_OK):
        out = {
            "ddrescue 1.27": out["ddrescue 1.27"],
            "ddrescue 1.30": [DDRESCUE_130, *OPTIONS],
            "ddfs": out["ddfs"],
        }
    return out


@dataclass(frozen=True)
class Models:
    """The model reported (``full``) and the one the simulator runs (``sim``, scaled)."""

    full: Model
    sim: Model


def check(
    predicted: Run, real: Run, testmap: Path, size: int, models: Models
) -> tuple[str, list[list[Request]] | None]:
    """Whether the real run is the predicted one and the disk saw just its reads (``yes``,
    with the failed reads the kernel cut in parts and what that cost), else what differs;
    and the disk's requests grouped by read (None when they are not the tool's reads)."""
    problems = []
    if not real.same_result(predicted):
        problems.append("map or bytes DIFFER")
    reads = real.reads()
    if reads != predicted.reads():
        problems.append("reads DIFFER")
    assert real.requests is not None and real.stats is not None
    groups: list[list[Request]] | None = None
    try:
        groups = group_requests(reads, real.requests)
        if [merged(g) for g in groups] != as_made(reads):
            problems.append("disk results DIFFER")
    except ValueError as exc:
        problems.append(f"disk log DIFFERS ({exc})")
    busy = disk_times(real.requests, testmap, size, models.sim)
    if busy and abs(busy[-1] - real.stats["busy_seconds"]) > 1e-5 + 1e-9 * len(busy):
        problems.append(f"busy {real.stats['busy_seconds']} s, replayed {busy[-1]:.6f} s")
    if problems or groups is None:
        return "; ".join(problems), groups
    made = figures(reads, testmap, size, models.full)
    cut, _ = cut_failed_cost(reads[: made.reads_before_good], groups, models.full)
    if not cut:
        return "yes", groups
    seen = figures(reads, testmap, size, models.full, groups)
    extra = seen.seconds_before_good - made.seconds_before_good
    return f"yes ({cut} cut: +{max(extra, 0.0):.2f} s)", groups


def run_map(name: str, args: argparse.Namespace, work: Path) -> list[Row]:
    """Every tool on one dead-head map: prediction, real run, checks, figures."""
    text, size = cut_map(load_map(name), args.limit)
    testmap, image = work / "test.map", work / "disk.img"
    testmap.write_text(text)
    write_random(image, size, seed=13)
    full = Model(args.rate, args.seek_ms / 1000, args.error_ms / 1000)
    models = Models(full, full.scaled(args.time_scale))
    rows = []
    for label, tool in tools(not args.no_130).items():
        tag = label.replace(" ", "-")
        predicted = predict(tool, image, testmap, work, f"{tag}-h")
        real = real_rescue(tool, image, testmap, work, tag, models.sim)
        verdict, groups = check(predicted, real, testmap, size, models)
        fig = figures(real.reads(), testmap, size, full, groups)  # as the disk saw them
        rows.append(Row(name, label, fig, real.wall, verdict))
        remove_outputs(predicted, real)
        print(
            f"{name} {label}: {fig.reads} reads, {fig.failed_before_good} failed of"
            f" {fig.reads_before_good} before all good data ({fig.seconds_before_good:.1f} s);"
            f" wall {real.wall:.1f} s; = test mode: {verdict}",
            file=sys.stderr,
            flush=True,
        )
    image.unlink()
    return rows


def print_rows(rows: list[Row]) -> None:
    """The table of every tool on every map, then the summary of ddfs against the others."""
    print_table(
        [
            "map",
            "tool",
            "reads",
            "failed",
            "reads before good",
            "failed before good",
            "disk s before good",
            "disk s total",
            "wall s",
            "= test mode",
        ],
        [
            [
                r.map,
                r.tool,
                f"{r.figures.reads:,}",
                f"{r.figures.failed:,}",
                f"{r.figures.reads_before_good:,}",
                f"{r.figures.failed_before_good:,}",
                f"{r.figures.seconds_before_good:,.1f}",
                f"{r.figures.seconds:,.1f}",
                f"{r.wall:,.1f}",
                r.check,
            ]
            for r in rows
        ],
    )
    print()
    by_map: dict[str, dict[str, Figures]] = {}
    for r in rows:
        by_map.setdefault(r.map, {})[r.tool] = r.figures
    others = [t for t in dict.fromkeys(r.tool for r in rows) if t != "ddfs"]
    summary = []
    for name, figs in by_map.items():
        ours = figs["ddfs"].seconds_before_good
        cells = [f"{figs[t].seconds_before_good:,.1f}" for t in others]
        ratios = [f"{ours / figs[t].seconds_before_good:.2f}" for t in others]
        summary.append([name, *cells, f"{ours:,.1f}", *ratios])
    print_table(
        ["map", *[f"{t} s" for t in others], "ddfs s", *[f"ddfs / {t}" for t in others]],
        summary,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="Scratch: $DDFS_BENCH_DIR."
    )
    ap.add_argument("--only", nargs="*", choices=MAPS, default=MAPS, help="maps [d01..d10]")
    ap.add_argument(
        "--limit",
        type=parse_size,
        default=None,
        help="cut each map after the good block reaching this size [whole map]",
    )
    ap.add_argument("--rate", type=parse_size, default=200 << 20, help="bytes/s [200Mi]")
    ap.add_argument("--seek-ms", type=float, default=8.0, help="ms per seek [8]")
    ap.add_argument("--error-ms", type=float, default=50.0, help="ms per failed read [50]")
    ap.add_argument(
        "--time-scale",
        type=float,
        default=0.01,
        help="the simulator's clock against the model's [0.01]",
    )
    ap.add_argument("--no-130", action="store_true", help="leave out GNU ddrescue 1.30")
    args = ap.parse_args(argv)
    print(f"{tool_version(DDRESCUE)}; {tool_version(DDFS)}; {time.strftime('%Y-%m-%d %H:%M')}")
    print(
        f"model: {args.rate / 2**20:g} MiB/s, {args.seek_ms:g} ms seek, {args.error_ms:g} ms"
        f" per failed read; simulator at {args.time_scale:g} of that time\n"
    )
    rows: list[Row] = []
    with scratch_dir("deadhead_realio") as work:
        for name in args.only:
            rows += run_map(name, args, work)
    print_rows(rows)
    return 0 if all(r.check.startswith("yes") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
