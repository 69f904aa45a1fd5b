"""Failed reads before all good data on dead-head disks: ddfs against GNU ddrescue 1.27 and 1.30.

Each map (``tests/data/deadhead``, and the full-size reference geometries of
``bench/data/deadhead``) was made by ddrescue 1.30's ``ddrescuelog --make-test``; 1.30's figures
on it are recorded there (no 1.30 binary is here). ddfs (its default schedule) and GNU ddrescue
1.27 run side by side in this run, in test mode on a sparse input, with 1.30's options
(``-f -n -S -H MAP``). Counted from each read log: failed reads and reads up to the last read
that copied data ("before all good data"), and the simulated disk's busy time for those reads
(a seek for a read that does not start where the last one ended, 8 ms; 200 MiB/s; 50 ms per
failed read, as bench/simulated_disk.py).

    .venv/bin/python bench/deadhead.py [--only d01 g1 ...] [--no-ddrescue]
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETS = [ROOT / "tests" / "data" / "deadhead", ROOT / "bench" / "data" / "deadhead"]
DDFS = str(Path(sys.executable).with_name("ddfs"))
SEEK, ERROR, RATE = 0.008, 0.050, 200 * 2**20


def count(log: Path) -> tuple[int, int, float]:
    """Failed reads, reads and disk seconds up to the last read that copied data."""
    n = failed = 0
    seconds = 0.0
    head = 0
    upto = (0, 0, 0.0)
    for line in log.read_text().splitlines():
        if not line.startswith("0x"):
            continue
        pos, size, copied, error = (int(f, 0) for f in line.split()[:4])
        n += 1
        failed += error > 0
        seconds += (SEEK if pos != head else 0.0) + copied / RATE + (ERROR if error else 0.0)
        head = pos + size
        if copied:
            upto = (failed, n, seconds)
    return upto


def run_one(tool: list[str], test_map: Path, size: int, work: Path) -> tuple[int, int, float]:
    infile, log = work / "in.img", work / "reads.log"
    for name in ("out.img", "out.map", "reads.log"):
        (work / name).unlink(missing_ok=True)
    with open(infile, "wb") as fh:
        fh.truncate(size)
    argv = [*tool, "-q", "-f", "-n", "-S", "-H", str(test_map), f"--log-reads={log}"]
    subprocess.run([*argv, str(infile), str(work / "out.img"), str(work / "out.map")], check=True)
    infile.unlink()
    return count(log)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--no-ddrescue", action="store_true", help="skip the GNU ddrescue 1.27 runs")
    args = ap.parse_args()
    print("| map | geometry | ddrescue 1.27 | ddrescue 1.30 (recorded) | ddfs | ddfs / 1.30 |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        work = Path(tmp)
        for folder in SETS:
            for case in json.loads((folder / "figures.json").read_text()):
                if args.only and case["name"] not in args.only:
                    continue
                test_map = work / "test.map"
                test_map.write_bytes(gzip.decompress((folder / case["map"]).read_bytes()))
                ours = run_one([DDFS, "rescue"], test_map, case["size"], work)
                theirs = case["ddrescue_1.30"]
                old = (
                    "-"
                    if args.no_ddrescue
                    else _fmt(run_one(["ddrescue"], test_map, case["size"], work))
                )
                print(
                    f"| {case['name']} | {case['geometry']} | {old}"
                    f" | {theirs['failed_before_good']:,} / {theirs['reads_before_good']:,}"
                    f" | {_fmt(ours)} | {ours[0] / theirs['failed_before_good']:.2f} |",
                    flush=True,
                )


def _fmt(figures: tuple[int, int, float]) -> str:
    failed, reads, seconds = figures
    return f"{failed:,} / {reads:,} ({seconds:,.0f} s)"


if __name__ == "__main__":
    main()
