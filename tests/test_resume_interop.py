"""Interrupt and resume across tools: a rescue stopped by ddfs is finished by ddrescue and the
other way round, with the same result as an uninterrupted run (docs/ddrescue-behaviour.md §1.7,
§2.6, §2.9).

Mid-rescue maps are made deterministically: both tools stop at the same read because of a limit
(``-e``, ``-X``), run only some passes (``--cpass``), or start from a hand-written status line
(experiment D). A last test interrupts ``ddfs rescue`` with a real SIGINT.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.oracle import (
    MiB,
    Run,
    assert_same,
    command,
    content_lines,
    ddrescuelog_t,
    files_equal,
    make_input,
    parse_map,
    read_log,
    run_both,
    run_tool,
    scattered_areas,
    write_map,
    write_test_map,
)

SIZE = 64 * MiB
BAD_B = scattered_areas(SIZE, 199, seed=5)
#: experiment D: 8 isolated bad sectors
BAD_D = [(k * 0x100000 + 0x200, 512) for k in range(1, 9)]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("interop")


@pytest.fixture(scope="module")
def infile(work: Path) -> Path:
    return make_input(work / "in64.bin", SIZE, seed=1)


@pytest.fixture(scope="module")
def map_b(work: Path) -> Path:
    return write_test_map(work / "B.tm", SIZE, BAD_B)


def _accepted(run: Run) -> None:
    check = ddrescuelog_t(run.mapfile)
    assert check.returncode == 0, f"ddrescuelog -t rejects {run.mapfile}: {check.stderr}"


def _cross_resume(
    tmp_path: Path, infile: Path, test_map: Path, stop_args: str, resume_args: str
) -> tuple[Run, Run]:
    """Stop both tools with ``stop_args``; check they stopped at the same point; let each
    tool finish the other's map with ``resume_args``; compare with an uninterrupted run."""
    ref, got = run_both(tmp_path / "stop", infile, stop_args.split(), test_map=test_map)
    assert_same(ref, got)
    _accepted(got)
    status = got.map_lines[0].split()[1]
    assert status != "+" or "--cpass" in stop_args, "the stop left the finished status"

    full = run_tool(
        "ddrescue", tmp_path, infile, resume_args.split(), test_map=test_map, tag="-full"
    )
    (tmp_path / "resume").mkdir()
    by_ref = run_tool(
        "ddrescue",
        tmp_path / "resume",
        infile,
        resume_args.split(),
        test_map=test_map,
        premap=got.mapfile,
        preout=got.outfile,
    )
    by_got = run_tool(
        "ddfs",
        tmp_path / "resume",
        infile,
        resume_args.split(),
        test_map=test_map,
        premap=ref.mapfile,
        preout=ref.outfile,
    )
    assert_same(by_ref, by_got)
    _accepted(by_got)
    for run in (by_ref, by_got):
        assert run.map_lines[1:] == full.map_lines[1:], f"{run.tool}: not the uninterrupted map"
        assert run.map_lines[0].split()[1] == "+"
        assert files_equal(run.outfile, full.outfile), f"{run.tool}: not the uninterrupted output"
    return ref, got


# ------------------------------------------------------------------------------ stops
def test_stop_in_trimming(tmp_path: Path, infile: Path, map_b: Path) -> None:
    """-e stops before a read, as an interrupt does: the map says trimming (``*``)."""
    ref, _ = _cross_resume(tmp_path, infile, map_b, "-e 3", "")
    assert ref.map_lines[0].split()[1] == "*"


def test_stop_in_copying_pass_1(tmp_path: Path, infile: Path, map_b: Path) -> None:
    """With -c1 every failure is a bad area at once, so -e stops inside pass 1."""
    ref, _ = _cross_resume(tmp_path, infile, map_b, "-c1 -s 16Mi -e 5", "-c1 -s 16Mi")
    pos, status, passno = parse_map(ref.mapfile)[0]
    assert (status, passno) == ("?", 1) and 0 < pos < 16 * MiB


def test_stop_in_scraping(tmp_path: Path, infile: Path, map_b: Path) -> None:
    bad = [(0x1000000 + k * 0x400, 512) for k in range(8)]  # one cluster: 8 areas
    test_map = write_test_map(tmp_path / "scrape.tm", SIZE, bad)
    ref, _ = _cross_resume(tmp_path, infile, test_map, "-e 4", "")
    assert ref.map_lines[0].split()[1] == "/"


def test_cpass_then_resume(tmp_path: Path, infile: Path, map_b: Path) -> None:
    """--cpass=1 ends normally (``+``) with ``?`` left; the next run starts at pass 1."""
    ref, _ = _cross_resume(tmp_path, infile, map_b, "--cpass=1", "")
    assert any(line.endswith("?") for line in ref.map_lines[1:])


def test_stop_with_max_read_errors(tmp_path: Path, infile: Path, map_b: Path) -> None:
    """-X 20 stops right after the 21st failed read, in pass 1."""
    ref, _ = _cross_resume(tmp_path, infile, map_b, "-X 20", "")
    assert ref.map_lines[0].split()[1:] == ["?", "1"]


def test_stop_in_pass_2(tmp_path: Path, infile: Path, map_b: Path) -> None:
    """Pass 1 of this case B fails 152 times and pass 2 24 times: -X 160 stops in pass 2."""
    ref, _ = _cross_resume(tmp_path, infile, map_b, "-X 160", "")
    assert ref.map_lines[0].split()[1:] == ["?", "2"]


# ------------------------------------------------------------------------------ retrying
@pytest.fixture(scope="module")
def map_d(work: Path, infile: Path) -> tuple[Path, Path, Path]:
    """Experiment D: the test map, and the map and output of a finished run without retries."""
    test_map = write_test_map(work / "D.tm", SIZE, BAD_D)
    done = run_tool("ddrescue", work, infile, [], test_map=test_map, tag="-D")
    return test_map, done.mapfile, done.outfile


def test_retry_resume_experiment_d(
    tmp_path: Path, infile: Path, map_d: tuple[Path, Path, Path]
) -> None:
    """Status ``0x00500400 - 2`` (interrupted in retry pass 2): ``-r1`` goes on backwards
    from current_pos: 0x500200, 0x400200, ... 0x100200, then stops."""
    test_map, done_map, done_out = map_d
    blocks = parse_map(done_map)[1]
    start = write_map(tmp_path / "start.map", "0x00500400 - 2", blocks)
    ref, got = run_both(tmp_path, infile, ["-r1"], test_map=test_map, premap=start, preout=done_out)
    assert_same(ref, got)
    _accepted(got)
    assert [line.split("\t")[0] for line in got.reads] == [
        f"0x{k * 0x100000 + 0x200:08X}" for k in (5, 4, 3, 2, 1)
    ]
    assert got.map_lines[0].split()[1:] == ["+", "2"]


@pytest.mark.parametrize("args", ["-r2", "-r2 -u", "-r1 -R"])
def test_retry_resume_odd_pass(
    tmp_path: Path, infile: Path, map_d: tuple[Path, Path, Path], args: str
) -> None:
    """A resumed odd pass numbers the passes of this run from 1 again."""
    test_map, done_map, done_out = map_d
    blocks = parse_map(done_map)[1]
    start = write_map(tmp_path / "start.map", "0x00300200 - 3", blocks)
    ref, got = run_both(
        tmp_path, infile, args.split(), test_map=test_map, premap=start, preout=done_out
    )
    assert_same(ref, got)


def test_retry_interrupted_by_limit_then_resumed(
    tmp_path: Path, infile: Path, map_d: tuple[Path, Path, Path]
) -> None:
    """From the finished map, -r4 -X 12 stops right after the 13th failed read: in retry
    pass 2 (8 bad sectors per pass); both tools finish the other's map with -r1."""
    test_map, done_map, done_out = map_d
    ref, got = run_both(
        tmp_path, infile, ["-r4", "-X", "12"], test_map=test_map, premap=done_map, preout=done_out
    )
    assert_same(ref, got)
    assert got.map_lines[0].split()[1:] == ["-", "2"]
    by_ref = run_tool(
        "ddrescue",
        tmp_path,
        infile,
        ["-r1"],
        test_map=test_map,
        premap=got.mapfile,
        preout=got.outfile,
        tag="-resume",
    )
    by_got = run_tool(
        "ddfs",
        tmp_path,
        infile,
        ["-r1"],
        test_map=test_map,
        premap=ref.mapfile,
        preout=ref.outfile,
        tag="-resume",
    )
    assert_same(by_ref, by_got)


# ------------------------------------------------------------------------------ SIGINT
def test_sigint_then_resume(tmp_path: Path, infile: Path, map_b: Path) -> None:
    """SIGINT mid-rescue: ddfs saves the map with the phase status and dies by the signal
    (exit 130 in a shell); the map parses and resuming it gives the uninterrupted result."""
    args = ["-H", str(map_b), "-c1"]
    outfile, mapfile, logfile = (tmp_path / n for n in ("int.out", "int.map", "int.log"))
    cmd = command("ddfs", infile, outfile, mapfile, [*args, f"--log-reads={logfile}"])
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if logfile.exists() and logfile.stat().st_size > 64 * 1024:
                break
            time.sleep(0.005)
        assert proc.poll() is None, "ddfs finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGINT, err
    pos, status, passno = parse_map(mapfile)[0]
    assert (status, passno) == ("?", 1)
    assert ddrescuelog_t(mapfile).returncode == 0
    blocks = parse_map(mapfile)[1]
    assert any(st == "?" and p <= pos < p + n for p, n, st in blocks), "current_pos is unread"
    reads = read_log(logfile)
    assert reads and int(reads[-1].split("\t")[0], 16) < pos
    rescued_end = max(p + n for p, n, st in blocks if st == "+")
    assert outfile.stat().st_size == rescued_end, "the output ends with the rescued data"
    interrupted = Run("ddfs", outfile, mapfile, logfile, proc.returncode, err.decode())

    full = run_tool("ddrescue", tmp_path, infile, ["-c1"], test_map=map_b, tag="-full")
    for tool in ("ddfs", "ddrescue"):
        done = run_tool(
            tool,
            tmp_path,
            infile,
            ["-c1"],
            test_map=map_b,
            premap=interrupted.mapfile,
            preout=interrupted.outfile,
            tag="-resume",
        )
        assert done.returncode == 0, done.stderr
        assert content_lines(done.mapfile)[1:] == full.map_lines[1:], tool
        assert files_equal(done.outfile, full.outfile), tool
        first = read_log(done.logfile)[0]
        assert int(first.split("\t")[0], 16) == pos, f"{tool} resumes at current_pos"
