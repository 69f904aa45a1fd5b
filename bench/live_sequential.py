"""Part 1 of the live-mount benchmark (``bench/live_mount.py``): sequential reads.

How fast is finished data read through ``ddfs mount``? ``dd`` reads ``MNT/image``, OUTFILE
directly and OUTFILE through the bare pyfuse3 server (``bench/live_bare.py``) at several block
sizes, plus ``MNT/p1`` against the same range of OUTFILE, in rotating order; the table gives
median MiB/s, the ratios and the mount's CPU seconds per GiB read. See the docstring of
``bench/live_mount.py`` for the whole method.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    GiB,
    MiB,
    Run,
    median,
    mib_per_s,
    print_table,
    run_measured,
    scratch_dir,
    write_random,
)
from bench.live_bare import bare_fuse
from bench.live_common import (
    SECTOR,
    LiveRow,
    ddfs_environment,
    make_gpt,
    process_cpu,
    same_bytes,
    wait_until,
)

DD = "dd"
BS_LIST = ("128k", "1M", "4M")

Case = tuple[str, str, Path, int, int]  # (source, bs, path, skip, count)


def dd_read(path: Path, bs: str, skip: int = 0, count: int = 0) -> Run:
    """``dd if=PATH of=/dev/null bs=BS [skip= count=]``, measured."""
    cmd = [DD, f"if={path}", "of=/dev/null", f"bs={bs}"]
    if skip:
        cmd.append(f"skip={skip}")
    if count:
        cmd.append(f"count={count}")
    return run_measured(cmd)


@dataclass
class Readings:
    """The wall times of every ``dd`` and the mount's CPU seconds meanwhile, per (source, bs)."""

    size: int
    p1_size: int
    walls: dict[tuple[str, str], list[float]]
    cpus: dict[tuple[str, str], list[float]]

    def bytes_of(self, src: str) -> int:
        return self.p1_size if "p1" in src else self.size

    def speed(self, src: str, bs: str) -> float:
        """Median MiB/s of ``src`` at ``bs``."""
        return mib_per_s(self.bytes_of(src), median(self.walls[src, bs]))

    def cpu_per_gib(self, src: str, bs: str) -> float:
        """Median CPU seconds of the mount per GiB read from ``src`` at ``bs``."""
        return median(self.cpus[src, bs]) / (self.bytes_of(src) / GiB)


def read_cases(outfile: Path, mnt: Path, bare: Path, p1_start: int, p1_size: int) -> list[Case]:
    """Every ``dd`` of a round: OUTFILE, the mount and the bare server per bs, then ``p1``."""
    cases: list[Case] = []
    for bs in BS_LIST:
        cases += [("direct", bs, outfile, 0, 0), ("mount", bs, mnt / "image", 0, 0)]
        cases.append(("bare", bs, bare, 0, 0))
    cases.append(("direct p1", "1M", outfile, p1_start // MiB, p1_size // MiB))
    cases.append(("mount p1", "1M", mnt / "p1", 0, 0))
    return cases


def measure(cases: list[Case], rounds: int, pid: int, size: int, p1_size: int) -> Readings:
    """A warm-up, then ``rounds`` rounds of ``cases`` in rotating order (reversed every other)."""
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
    return Readings(size, p1_size, walls, cpus)


def print_sequential(r: Readings, rounds: int, rescue_s: float) -> None:
    """The table of part 1."""
    rows = []
    for bs in BS_LIST:
        d, m, b = r.speed("direct", bs), r.speed("mount", bs), r.speed("bare", bs)
        cpu = r.cpu_per_gib("mount", bs)
        cells = [f"{d:.0f}", f"{m:.0f}", f"{m / d:.3f}", f"{b:.0f}", f"{b / d:.3f}", f"{m / b:.3f}"]
        rows.append([f"image, bs={bs}", *cells, f"{cpu:.2f}"])
    d, m = r.speed("direct p1", "1M"), r.speed("mount p1", "1M")
    cpu = r.cpu_per_gib("mount p1", "1M")
    rows.append(["p1, bs=1M", f"{d:.0f}", f"{m:.0f}", f"{m / d:.3f}", "", "", "", f"{cpu:.2f}"])
    print()
    print(
        f"Sequential read of finished data, {r.size / MiB:g} MiB, median of {rounds} rounds "
        f"(rescue to 'finished': {rescue_s:.2f} s after start; contents checked):"
    )
    print()
    headers = ["read", "OUTFILE MiB/s", "mount MiB/s", "mount / OUTFILE", "bare FUSE MiB/s"]
    headers += ["bare / OUTFILE", "mount / bare", "mount CPU s/GiB"]
    print_table(headers, rows)
    print()


def sequential_rows(r: Readings) -> list[LiveRow]:
    """The summary rows of part 1: the mount against OUTFILE and against the bare server."""
    out = []
    name = f"sequential {r.size / GiB:g} GiB"
    for bs in ("128k", "1M"):
        d, m = r.speed("direct", bs), r.speed("mount", bs)
        out.append(
            LiveRow(name, f"MiB/s, dd bs={bs}", f"{d:.0f} (OUTFILE)", f"{m:.0f}", f"{m / d:.3f}")
        )
    for bs in ("128k", "1M"):
        m, b = r.speed("mount", bs), r.speed("bare", bs)
        out.append(
            LiveRow(
                name, f"MiB/s, bs={bs}, vs bare FUSE", f"{b:.0f} (bare)", f"{m:.0f}", f"{m / b:.3f}"
            )
        )
    return out


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
            cases = read_cases(outfile, mnt, bare, p1_start, p1_size)
            readings = measure(cases, rounds, mount.proc.pid, size, p1_size)
            checks = {
                "image": same_bytes(infile, mnt / "image"),
                "p1": same_bytes(mnt / "p1", infile, p1_start, p1_size),
                "bare image": same_bytes(infile, bare),
                "outfile": same_bytes(infile, outfile),
            }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise RuntimeError(f"read back differs from the input: {', '.join(bad)}")
    print_sequential(readings, rounds, rescue_s)
    return sequential_rows(readings)
