"""Benchmark 2: loading and saving a 1,000,000-line mapfile, GNU ddrescue vs ddfs.

Two realistic maps of 1,000,000 block lines, alternating ``+`` and ``-`` blocks of random
sector-multiple sizes, in ddrescue's own layout:

* ``1TB``: a 1 TB disk (positions with 10 hex digits);
* ``4GB``: a disk just under 4 GiB (8 hex digits, 4,000,000,000 bytes).

Two pairs of commands, each doing nothing but load the whole map and write it out again:

* ``rescue``: ``ddrescue -q IN OUT MAP`` vs ``ddfs rescue -q IN OUT MAP`` on a sparse input of
  the map's size. The map is finished (only ``+`` and ``-``, no retry passes), so each tool
  loads it, finds nothing to read and does its final save: the whole end-to-end cost of a
  resumed rescue with a big map.
* ``log``: ``ddrescuelog -a +,+ MAP > NEW`` (a no-op status translation: load, write the whole
  map) vs a Python child doing ``engine.map.mapfile.parse_mapfile`` then ``save_mapfile`` of
  ``iter_mapfile_text`` (the library path, without the rescue set-up).

Every command runs as its own process under ``/usr/bin/time`` (wall time, CPU, peak RSS), the
tools alternate round by round, each run starts from a fresh copy of the map, and every result
is checked: the block lines written must equal the generated ones.

Run: ``.venv/bin/python bench/mapfile_io.py [--lines 1000000] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    DDFS,
    DDRESCUE,
    DDRESCUELOG,
    Run,
    Summary,
    map_lines,
    median,
    print_table,
    python_env,
    ratio,
    remove_scratch,
    run_measured,
    scratch_dir,
)

SECTOR = 512
VARIANTS = {"1TB": 10**12, "4GB": 4_000_000_000}

LIBRARY_CHILD = """\
import json, sys, time
t0 = time.perf_counter()
from engine.map.mapfile import format_header, iter_mapfile_text, parse_mapfile, save_mapfile
t1 = time.perf_counter()
d = parse_mapfile(sys.argv[1])
t2 = time.perf_counter()
header = format_header("bench", time.time(), time.time(), "Finished")
text = iter_mapfile_text(d.bmap, d.current_pos, d.current_status, d.current_pass, header)
save_mapfile(sys.argv[2], text)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "save": t3 - t2, "blocks": len(d.bmap)}))
"""


def generate_map(path: Path, disk_size: int, lines: int, seed: int = 7) -> list[str]:
    """Write a finished map of ``lines`` alternating ``+``/``-`` blocks covering the disk.

    Returns the block lines in the normalised form of :func:`bench.common.map_lines`.
    """
    rng = random.Random(seed)
    sectors = disk_size // SECTOR
    nbad = lines // 2
    ngood = lines - nbad
    # bad blocks: 1..max_bad sectors; good blocks share the rest at random
    max_bad = max(1, min(128, sectors // lines // 4))
    bad = [rng.randint(1, max_bad) for _ in range(nbad)]
    room = sectors - sum(bad)
    cuts = sorted(rng.sample(range(1, room), ngood - 1))
    good = [b - a for a, b in zip([0, *cuts], [*cuts, room], strict=True)]
    if min(good) <= 0:
        raise RuntimeError("disk too small for that many blocks")
    out: list[str] = []
    pos = 0
    for i in range(lines):
        size = (good[i // 2] if i % 2 == 0 else bad[i // 2]) * SECTOR
        out.append(f"0x{pos:08X}  0x{size:08X}  {'+' if i % 2 == 0 else '-'}\n")
        pos += size
    assert pos == sectors * SECTOR
    header = (
        "# Mapfile. Created by GNU ddrescue version 1.27\n"
        "# Command line: ddrescue /dev/sdb disk.img disk.map\n"
        "# Start time:   2026-11-24 10:00:00\n"
        "# Current time: 2026-11-24 12:00:00\n"
        "# Finished\n"
        "# current_pos  current_status  current_pass\n"
        f"0x{pos - SECTOR:08X}     +               1\n"
        "#      pos        size  status\n"
    )
    with open(path, "w") as fh:
        fh.write(header)
        fh.writelines(out)
    return [" ".join(line.split()) for line in out]


def check_blocks(path: Path, expected: list[str], what: str) -> None:
    _, blocks = map_lines(path)
    if blocks != expected:
        bad = next(
            (i for i, (a, b) in enumerate(zip(blocks, expected, strict=False)) if a != b),
            min(len(blocks), len(expected)),
        )
        raise RuntimeError(f"{what}: block lines differ from the generated map at line {bad}")


def run_variant(
    work: Path, name: str, disk_size: int, lines: int, rounds: int
) -> tuple[dict[str, list[Run]], list[dict[str, float]]]:
    """Measure the four commands on one generated map."""
    src = work / f"{name}.map"
    print(f"mapfile I/O: generating {lines} lines on a {disk_size:,} byte disk ({name})")
    expected = generate_map(src, disk_size, lines)
    infile = work / f"{name}.in"
    with open(infile, "wb") as fh:  # sparse input of the map's size (never read)
        fh.truncate(disk_size)
    env = python_env()
    runs: dict[str, list[Run]] = {
        k: [] for k in ("rescue/ddrescue", "rescue/ddfs", "log/ddrescue", "log/ddfs")
    }
    phases: list[dict[str, float]] = []

    def one(key: str) -> Run:
        mapfile = work / "work.map"
        outfile = work / f"out.{key.replace('/', '.')}"
        if key.startswith("rescue/"):
            shutil.copyfile(src, mapfile)
            if key == "rescue/ddrescue":
                cmd = [DDRESCUE, "-q", str(infile), str(outfile), str(mapfile)]
                r = run_measured(cmd)
            else:
                cmd = [DDFS, "rescue", "-q", str(infile), str(outfile), str(mapfile)]
                r = run_measured(cmd, env=env)
            check_blocks(mapfile, expected, key)
            return r
        newmap = work / "new.map"
        newmap.unlink(missing_ok=True)
        if key == "log/ddrescue":
            r = run_measured([DDRESCUELOG, "-a", "+,+", str(src)], stdout_path=newmap)
        else:
            cmd = [sys.executable, "-c", LIBRARY_CHILD, str(src), str(newmap)]
            r = run_measured(cmd, env=env)
            phases.append(json.loads(r.stdout))
        check_blocks(newmap, expected, key)
        return r

    for key in runs:  # warm-up (byte-code caches, page cache), not counted
        one(key)
    phases.clear()
    for rnd in range(rounds):
        for op in ("rescue", "log"):
            order = ("ddrescue", "ddfs") if rnd % 2 == 0 else ("ddfs", "ddrescue")
            for tool in order:
                key = f"{op}/{tool}"
                r = one(key)
                runs[key].append(r)
                print(
                    f"  {name} round {rnd + 1} {key:16s} {r.wall:6.3f} s "
                    f"{r.maxrss_kb / 1024:6.1f} MiB",
                    flush=True,
                )
    return runs, phases


def op_figures(name: str, op: str, runs: dict[str, list[Run]]) -> tuple[list[str], Summary]:
    """The table row and the summary row of one operation on one map, ddrescue vs ddfs."""
    a, b = runs[f"{op}/ddrescue"], runs[f"{op}/ddfs"]
    wa, wb = median([r.wall for r in a]), median([r.wall for r in b])
    ma, mb = max(r.maxrss_kb for r in a), max(r.maxrss_kb for r in b)
    ca = median([r.user + r.sys for r in a])
    cb = median([r.user + r.sys for r in b])
    row = [
        name,
        op,
        f"{wa:.3f}",
        f"{wb:.3f}",
        f"{ratio(wb, wa):.2f}",
        f"{ca:.3f}",
        f"{cb:.3f}",
        f"{ma / 1024:.1f}",
        f"{mb / 1024:.1f}",
        f"{ratio(mb, ma):.2f}",
    ]
    summary = Summary(
        f"mapfile {name} {op}",
        "median wall s / max RSS MiB",
        f"{wa:.3f} / {ma / 1024:.1f}",
        f"{wb:.3f} / {mb / 1024:.1f}",
        f"{ratio(wb, wa):.2f} / {ratio(mb, ma):.2f}",
    )
    return row, summary


def phase_row(name: str, phases: list[dict[str, float]]) -> list[str]:
    """The medians of the library child's in-process phases on one map."""
    return [
        name,
        f"{median([p['import'] for p in phases]):.3f}",
        f"{median([p['load'] for p in phases]):.3f}",
        f"{median([p['save'] for p in phases]):.3f}",
    ]


def print_tables(
    lines: int, rounds: int, table: list[list[str]], phase_rows: list[list[str]]
) -> None:
    """The comparison table and the table of the library child's phases."""
    print()
    print(f"Mapfile load + save, {lines:,} block lines, {rounds} interleaved rounds (medians):")
    print()
    print_table(
        [
            "disk",
            "operation",
            "ddrescue s",
            "ddfs s",
            "time ratio",
            "ddrescue CPU s",
            "ddfs CPU s",
            "ddrescue RSS MiB",
            "ddfs RSS MiB",
            "RSS ratio",
        ],
        table,
    )
    print()
    print("ddfs library child, in-process phases (medians, seconds):")
    print()
    print_table(["disk", "import", "parse_mapfile", "save_mapfile"], phase_rows)
    print()


def run(lines: int = 1_000_000, rounds: int = 5, keep: bool = False) -> list[Summary]:
    """Run the benchmark, print its tables and return the summary rows."""
    summaries: list[Summary] = []
    table: list[list[str]] = []
    phase_rows: list[list[str]] = []
    with scratch_dir("mapfile_io", keep) as work:
        for name, disk_size in VARIANTS.items():
            runs, phases = run_variant(work, name, disk_size, lines, rounds)
            for op in ("rescue", "log"):
                row, summary = op_figures(name, op, runs)
                table.append(row)
                summaries.append(summary)
            phase_rows.append(phase_row(name, phases))
    print_tables(lines, rounds, table, phase_rows)
    return summaries


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000, help="block lines [1000000]")
    ap.add_argument("--rounds", type=int, default=5, help="runs of each command [5]")
    ap.add_argument("--keep", action="store_true", help="keep the scratch files")
    args = ap.parse_args(argv)
    try:
        run(args.lines, args.rounds, args.keep)
    finally:
        if not args.keep:
            remove_scratch()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
