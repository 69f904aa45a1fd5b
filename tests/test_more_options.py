"""GNU ddrescue 1.27 and ``ddfs rescue`` side by side: the rate, check, pause, log and prompt
options (``-a -E -Z -O -J -I -P -W -B --ask --pause-on-* --log-events --log-rates
--max-slow-reads --reset-slow --delay-slow``), and the source identity ddfs adds.

Each case runs both tools on the same files and compares the exit status, the final map, the
output bytes and the data lines of the logs. Where a figure depends on the wall clock (a rate
sampled when the second changes), the test says so and compares what does not.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from engine.rescue.identity import PREFIX, Identity
from tests.oracle import (
    DDFS,
    DDRESCUE,
    DDRESCUELOG,
    SCHEDULE_127,
    MiB,
    assert_same,
    content_lines,
    files_equal,
    make_input,
    parse_map,
    run_both,
    write_map,
    write_test_map,
)
from tests.test_status_screen import last_block, on_a_terminal

SIZE = 2 * MiB


@pytest.fixture(scope="module")
def infile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_input(tmp_path_factory.mktemp("more") / "in.img", SIZE, seed=11)


def both(
    tmp: Path, infile: Path, args: list[str], stdin: str | None = None, quiet: bool = True
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run each tool once with ``args`` before INFILE OUT MAP; files are ``tmp/<tool>.*``."""
    tmp.mkdir(parents=True, exist_ok=True)
    out: dict[str, subprocess.CompletedProcess[str]] = {}
    for tool in ("ddrescue", "ddfs"):
        prog = [DDRESCUE] if tool == "ddrescue" else [DDFS, "rescue", *SCHEDULE_127]
        words = [w.replace("@", f"{tmp}/{tool}.") for w in args]
        argv = [
            *prog,
            *(["-q"] if quiet else []),
            *words,
            str(infile),
            f"{tmp}/{tool}.out",
            f"{tmp}/{tool}.map",
        ]
        out[tool] = subprocess.run(
            argv,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
    return out


def message(stderr: str) -> str:
    """The error text without the program name (``ddrescue: `` / ``ddfs: ``) and indents."""
    lines = [re.sub(r"^(ddrescue|ddfs): ", "", ln).strip() for ln in stderr.splitlines()]
    return "\n".join(ln for ln in lines if ln)


# ---------------------------------------------------------------------------------- -I
def test_verify_input_size(tmp_path: Path, infile: Path) -> None:
    """No map, another size, the same size: the same refusals (exit 1, nothing written).

    (Without ``-q``: ddrescue's ``-q`` silences even its refusals; ddfs always says why.)"""
    r = both(tmp_path / "nomap", infile, ["-I"], quiet=False)
    assert r["ddrescue"].returncode == r["ddfs"].returncode == 1
    assert message(r["ddrescue"].stderr) == message(r["ddfs"].stderr)
    assert "Can't verify input file size." in r["ddfs"].stderr
    assert not list((tmp_path / "nomap").iterdir())
    for name, blocks in (
        ("other", [(0, SIZE // 2, "+")]),
        ("same", [(0, SIZE // 2, "+"), (SIZE // 2, SIZE // 2, "?")]),
    ):
        d = tmp_path / name
        d.mkdir()
        for tool in ("ddrescue", "ddfs"):
            write_map(d / f"{tool}.map", "0 ? 1", blocks)
        before = (d / "ddfs.map").read_bytes()
        r = both(d, infile, ["-I"], quiet=False)
        assert r["ddrescue"].returncode == r["ddfs"].returncode, r["ddfs"].stderr
        assert message(r["ddrescue"].stderr) == message(r["ddfs"].stderr)
        if name == "other":
            assert r["ddfs"].returncode == 1
            assert (d / "ddfs.map").read_bytes() == before
            assert not (d / "ddfs.out").exists()
        else:
            assert r["ddfs"].returncode == 0
            assert content_lines(d / "ddfs.map") == content_lines(d / "ddrescue.map")
            assert files_equal(d / "ddfs.out", d / "ddrescue.out")


# ---------------------------------------------------------------------------------- --ask
def _prompt(stdout: str) -> list[str]:
    """The prompt's lines after the version line (which names each program)."""
    return stdout.replace("\r", "").split("\n")[1:5]


@pytest.mark.parametrize("answer", ["n\n", "", "yes\n"], ids=["no", "eof", "yes"])
def test_ask(tmp_path: Path, infile: Path, answer: str) -> None:
    """``--ask`` shows sizes (``--ask`` uses exact figures, ``2Mi``), then only ``y`` goes on;
    a declined run writes nothing and exits 1."""
    (tmp_path / "ddrescue.out").write_bytes(b"x" * 1000)  # an existing output shows its size
    (tmp_path / "ddfs.out").write_bytes(b"x" * 1000)
    r = both(tmp_path, infile, ["--ask", "-i", "4096", "-s", "1Mi", "-o", "0"], stdin=answer)
    ref, got = r["ddrescue"], r["ddfs"]
    assert got.returncode == ref.returncode == (0 if answer.startswith("y") else 1), got.stderr
    expect = [ln.replace("ddrescue.out", "ddfs.out") for ln in _prompt(ref.stdout)]
    assert _prompt(got.stdout) == expect
    assert expect[0] == "About to copy 1048 kBytes"
    if answer.startswith("y"):
        assert content_lines(tmp_path / "ddfs.map") == content_lines(tmp_path / "ddrescue.map")
        assert files_equal(tmp_path / "ddfs.out", tmp_path / "ddrescue.out")
    else:
        assert not (tmp_path / "ddfs.map").exists() and not (tmp_path / "ddrescue.map").exists()
        assert (tmp_path / "ddfs.out").read_bytes() == b"x" * 1000


# ---------------------------------------------------------------------------------- -J
def test_verify_on_error_before_first_good_read(tmp_path: Path, infile: Path) -> None:
    """``-J`` with an error before any good read: exit 1 with the same message and map."""
    tmap = write_test_map(tmp_path / "t.map", SIZE, [(0, 0x200)])
    d = tmp_path / "run"
    r = both(d, infile, ["-J", "-H", str(tmap)], quiet=False)
    assert r["ddrescue"].returncode == r["ddfs"].returncode == 1
    assert message(r["ddfs"].stderr) == message(r["ddrescue"].stderr)
    assert "Read error found before the first good read." in r["ddfs"].stderr
    assert content_lines(d / "ddfs.map") == content_lines(d / "ddrescue.map")
    assert files_equal(d / "ddfs.out", d / "ddrescue.out")


def test_verify_on_error_consistent(tmp_path: Path, infile: Path) -> None:
    """``-J`` over scattered errors on a steady input: each re-read agrees, the run is plain."""
    bad = [(0x20000 + i * 0x31000, 0x400) for i in range(10)]
    tmap = write_test_map(tmp_path / "t.map", SIZE, bad)
    ref, got = run_both(tmp_path / "run", infile, ["-J", "-r1"], test_map=tmap)
    assert ref.returncode == 0
    assert_same(ref, got)


def test_verify_on_error_inconsistent(tmp_path: Path, infile: Path) -> None:
    """ddfs only (GNU ddrescue needs a disk that changes its data): the latest good sector
    reads back different, so the run stops with ddrescue's message and exit 1."""
    from engine.options import RescueOptions
    from engine.rescue.builder import prepare
    from engine.schedule.base import Read

    tmap = write_test_map(tmp_path / "t.map", SIZE, [(0x30000, 0x200)])
    opts = RescueOptions(verify_on_error=True, test_map=str(tmap), metadata_first=False)
    rescuer, _ = prepare(str(infile), str(tmp_path / "o"), str(tmp_path / "m"), opts)
    rescuer.source.reread = lambda pos, size: (b"\1" * size, 0)  # type: ignore[method-assign]
    rescuer.do_read(Read(0, 0x10000))
    rescuer.do_read(Read(0x30000, 0x10000))
    with pytest.raises(Exception, match=r"Input file returns inconsistent data\."):
        rescuer.check_limits()
    rescuer.source.close()
    rescuer.output.close()


# ---------------------------------------------------------------------------------- -O
def _opens(trace: Path, infile: Path) -> int:
    return sum(
        1
        for line in trace.read_text().splitlines()
        if f'"{infile}"' in line and "open" in line and "= -1" not in line
    )


def test_reopen_on_error(tmp_path: Path, infile: Path) -> None:
    """``-O``: the input is opened again after each copying-phase error, as often as ddrescue
    does it (strace counts the opens), with the same map and output."""
    bad = [(0x20000 + i * 0x40000, 0x200) for i in range(5)]
    tmap = write_test_map(tmp_path / "t.map", SIZE, bad)
    counts = {}
    for tool in ("ddrescue", "ddfs"):
        prog = [DDRESCUE] if tool == "ddrescue" else [DDFS, "rescue", *SCHEDULE_127]
        trace = tmp_path / f"{tool}.trace"
        subprocess.run(
            [
                *("strace", "-f", "-qq", "-e", "trace=open,openat", "-o", str(trace), *prog),
                *("-q", "-O", "-H", str(tmap), str(infile)),
                *(str(tmp_path / f"{tool}.out"), str(tmp_path / f"{tool}.map")),
            ],
            check=True,
            capture_output=True,
        )
        counts[tool] = _opens(trace, infile)
    assert counts["ddrescue"] == 1 + 5  # once at the start, once after each error
    assert counts["ddfs"] == counts["ddrescue"]
    assert content_lines(tmp_path / "ddfs.map") == content_lines(tmp_path / "ddrescue.map")
    assert files_equal(tmp_path / "ddfs.out", tmp_path / "ddrescue.out")


# ---------------------------------------------------------------------------------- -E
def test_max_error_rate(tmp_path: Path, infile: Path) -> None:
    """``-E``: the error rate is sampled when the second changes. A real one-second pause after
    each error (``--pause-on-error=1``) puts the first sample after the first error, whatever
    the start time, so both tools stop at the same read with the same message and map."""
    tmap = write_test_map(tmp_path / "t.map", SIZE, [(0x50000, 0x200), (0x90000, 0x200)])
    d = tmp_path / "run"
    r = both(d, infile, ["-E", "100", "--pause-on-error=1", "-H", str(tmap)], quiet=False)
    assert r["ddrescue"].returncode == r["ddfs"].returncode == 1, r["ddfs"].stderr
    for tool in ("ddrescue", "ddfs"):
        assert "Too high error rate reading input file (" in r[tool].stdout
    assert content_lines(d / "ddfs.map") == content_lines(d / "ddrescue.map")
    assert files_equal(d / "ddfs.out", d / "ddrescue.out")


# ---------------------------------------------------------------------------------- pauses
def test_pauses(tmp_path: Path, infile: Path) -> None:
    """``--pause-on-pass=1`` sleeps between passes and ``--pause-on-error=1`` after each error;
    ``--pause-on-error=s5`` only moves the clock of the logs (at the next sample). Reads, map
    and output are those of a run without pauses."""
    tmap = write_test_map(tmp_path / "t.map", SIZE, [(0x50000, 0x400)])
    plain_ref, plain = run_both(tmp_path / "plain", infile, ["-r1"], test_map=tmap)
    assert_same(plain_ref, plain)
    start = time.monotonic()
    ref, got = run_both(
        tmp_path / "paused",
        infile,
        ["-r1", "--pause-on-pass=1", "--pause-on-error=1"],
        test_map=tmap,
    )
    took = time.monotonic() - start
    assert_same(ref, got)
    assert got.reads == plain.reads
    # ddrescue and ddfs each: 3 passes after the first (trim, scrape, retry) + at least
    # 3 errors (pass 1, trim, scrape ...), one second each
    assert took >= 2 * (3 + 3)
    d = tmp_path / "sim"
    r = both(d, infile, ["-r1", "--pause-on-error=s5", "--log-events=@ev", "-H", str(tmap)])
    assert r["ddfs"].returncode == r["ddrescue"].returncode == 0
    times = {t: _event_times(d / f"{t}.ev") for t in ("ddrescue", "ddfs")}
    # a simulated pause moves the start of the clock back at the next one-second sample,
    # which a run this short never takes: both logs show the same (short) times
    assert times["ddfs"] == times["ddrescue"]


# ---------------------------------------------------------------------------------- logs
def _event_fields(path: Path) -> list[str]:
    """The events log's data lines without the time column (the wall clock's)."""
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        out.append(line.strip() if line.startswith(" " * 22) else line[16:])
    return out


def _event_times(path: Path) -> list[int]:
    out = []
    for line in path.read_text().splitlines():
        m = re.match(r"\s+(?:(\d+)m:)?(\d+)s  ", line)
        if m:
            out.append(int(m.group(1) or 0) * 60 + int(m.group(2)))
    return out


@pytest.mark.parametrize(
    "extra",
    [["-r1"], ["-R", "-r2"], ["-X", "3"], ["-e", "1"], ["-n"]],
    ids=["retry", "reverse", "max-errors", "max-bad-areas", "no-scrape"],
)
def test_log_events(tmp_path: Path, infile: Path, extra: list[str]) -> None:
    """``--log-events``: the pass lines (percentage and message), the message that ended the
    run and the end-of-run line (position and status) are ddrescue's; the log is appended to
    on a second run. The time column is the wall clock's and is not compared."""
    bad = [(0x30000 + i * 0x28000, 0x600) for i in range(8)]
    tmap = write_test_map(tmp_path / "t.map", SIZE, bad)
    d = tmp_path / "run"
    for _ in range(2):
        r = both(d, infile, [*extra, "--log-events=@ev", "-H", str(tmap)])
        assert r["ddfs"].returncode == r["ddrescue"].returncode, r["ddfs"].stderr
    ours, theirs = _event_fields(d / "ddfs.ev"), _event_fields(d / "ddrescue.ev")
    assert ours == theirs
    assert sum(1 for ln in ours if "End of run" in ln) == 2
    assert (d / "ddfs.ev").read_text().count("# Events Logfile") == 2


_RATE_RE = re.compile(r"^ ?\d+  0x[0-9A-F]{8}  [ \d]{8}  [ \d]{8}  [ \d]{7}  [ \d]{8}$")


def test_log_rates(tmp_path: Path, infile: Path) -> None:
    """``--log-rates`` with ``-Z 1MiB`` over 3 MiB: one line per second in ddrescue's format.
    Which position a line shows depends on where the second changes, so the test compares the
    format, the seconds logged and the last line's bad areas and bad size."""
    big = make_input(tmp_path / "big.img", 3 * MiB, seed=3)
    tmap = write_test_map(tmp_path / "t.map", 3 * MiB, [(0x50000, 0x400), (0x150000, 0x200)])
    d = tmp_path / "run"
    r = both(d, big, ["-Z", "1MiB", "--log-rates=@rt", "-H", str(tmap)])
    assert r["ddfs"].returncode == r["ddrescue"].returncode == 0
    lines = {}
    for tool in ("ddrescue", "ddfs"):
        data = [ln for ln in (d / f"{tool}.rt").read_text().splitlines() if not ln.startswith("#")]
        assert data and all(_RATE_RE.match(ln) for ln in data), data
        lines[tool] = [ln.split() for ln in data]
    secs = {t: [int(f[0]) for f in v] for t, v in lines.items()}
    assert secs["ddfs"][0] == secs["ddrescue"][0] == 0
    assert secs["ddfs"] == sorted(set(secs["ddfs"]))
    assert abs(len(secs["ddfs"]) - len(secs["ddrescue"])) <= 1
    assert lines["ddfs"][-1][4:] == lines["ddrescue"][-1][4:]  # bad areas, bad size
    assert content_lines(d / "ddfs.map") == content_lines(d / "ddrescue.map")


# ---------------------------------------------------------------------------------- -Z, -a
def test_max_read_rate(tmp_path: Path) -> None:
    """``-Z 1MiB`` over 3 MiB takes about 3 seconds in both tools (one-second brakes)."""
    big = make_input(tmp_path / "big.img", 3 * MiB, seed=5)
    took = {}
    for tool in ("ddrescue", "ddfs"):
        start = time.monotonic()
        ours = [DDFS, "rescue", "--no-metadata-first", *SCHEDULE_127]
        prog = [DDRESCUE] if tool == "ddrescue" else ours
        subprocess.run(
            [*prog, "-q", "-Z", "1MiB", str(big), str(tmp_path / f"{tool}.out")], check=True
        )
        took[tool] = time.monotonic() - start
        assert files_equal(big, tmp_path / f"{tool}.out")
    assert 2 <= took["ddfs"] <= 5 and 2 <= took["ddrescue"] <= 5, took


def test_slow_reads(tmp_path: Path) -> None:
    """``-a`` with ``--delay-slow=0`` under a ``-Z`` brake: every sample is slow, so pass 1
    skips after each one and pass 2 reads the skipped areas backwards, in both tools. Where the
    skips fall depends on the wall clock; the finished result, the passes run and the status
    screen's slow-reads line are compared."""
    big = make_input(tmp_path / "big.img", 4 * MiB, seed=9)
    d = tmp_path / "run"
    r = both(d, big, ["-Z", "1MiB", "-a", "1GiB", "--delay-slow=0", "--log-reads=@log"])
    assert r["ddfs"].returncode == r["ddrescue"].returncode == 0
    for tool in ("ddrescue", "ddfs"):
        assert files_equal(big, d / f"{tool}.out")
        text = (d / f"{tool}.log").read_text()
        assert "Pass 1 (forwards)" in text and "Pass 2 (backwards)" in text, tool
    assert content_lines(d / "ddfs.map") == content_lines(d / "ddrescue.map")


def test_max_slow_reads(tmp_path: Path) -> None:
    """``--max-slow-reads=1``: the second slow sample ends the run with exit 1 and
    ``Too many slow reads``; each map is valid and claims only data that is in the output."""
    big = make_input(tmp_path / "big.img", 4 * MiB, seed=9)
    d = tmp_path / "run"
    r = both(
        d, big, ["-Z", "1MiB", "-a", "1GiB", "--delay-slow=0", "--max-slow-reads=1"], quiet=False
    )
    for tool in ("ddrescue", "ddfs"):
        assert r[tool].returncode == 1, (tool, r[tool].stderr)
        assert "Too many slow reads" in r[tool].stdout
        assert subprocess.run([DDRESCUELOG, "-t", str(d / f"{tool}.map")]).returncode == 0
        out = (d / f"{tool}.out").read_bytes()
        src = big.read_bytes()
        _, blocks = parse_map(d / f"{tool}.map")
        for pos, size, st in blocks:
            if st == "+":
                assert out[pos : pos + size] == src[pos : pos + size]
        assert any(st == "?" for _, _, st in blocks)  # stopped early


def test_reset_slow_parses(tmp_path: Path, infile: Path) -> None:
    """``--reset-slow``, ``--delay-slow`` and ``-a 0`` (auto) on a fast input change nothing."""
    tmap = write_test_map(tmp_path / "t.map", SIZE, [(0x50000, 0x400)])
    args = ["-a", "0", "--reset-slow", "--delay-slow=1m", "--max-slow-reads=0"]
    ref, got = run_both(tmp_path / "run", infile, args, test_map=tmap)
    assert ref.returncode == 0
    assert_same(ref, got)


# ---------------------------------------------------------------------------------- -W
def _writes(trace: Path) -> int:
    return sum(1 for ln in trace.read_text().splitlines() if ln.startswith("pwrite64("))


def test_compare_before_write(tmp_path: Path, infile: Path) -> None:
    """``-W`` over an output that already holds the data: neither tool writes (strace)."""
    for tool in ("ddrescue", "ddfs"):
        shutil.copyfile(infile, tmp_path / f"{tool}.out")
        ours = [DDFS, "rescue", "--no-metadata-first", *SCHEDULE_127]
        prog = [DDRESCUE] if tool == "ddrescue" else ours
        trace = tmp_path / f"{tool}.trace"
        subprocess.run(
            [
                *("strace", "-qq", "-e", "trace=pwrite64", "-o", str(trace), *prog, "-q", "-W"),
                *(str(infile), str(tmp_path / f"{tool}.out"), str(tmp_path / f"{tool}.map")),
            ],
            check=True,
        )
        assert _writes(trace) == 0, tool
        assert files_equal(infile, tmp_path / f"{tool}.out")
    assert content_lines(tmp_path / "ddfs.map") == content_lines(tmp_path / "ddrescue.map")


# ---------------------------------------------------------------------------------- screen
def _screen(argv: list[str], tmp_path: Path) -> str:
    return on_a_terminal(argv, tmp_path)


def test_binary_prefixes_and_preview(tmp_path: Path) -> None:
    """On a terminal: ``-B`` prints binary multipliers and ``-P`` the latest data as hex and
    text, with ddrescue's layout and figures; ``-a`` adds the slow-reads count."""
    src = make_input(tmp_path / "in.img", 3 * MiB + 4096, seed=2)
    screens = {}
    for tool, prog in (("ddrescue", ["ddrescue"]), ("ddfs", [DDFS, "rescue", *SCHEDULE_127])):
        argv = [*prog, "-B", "-P5", "-a", "1", str(src), str(tmp_path / f"{tool}.o")]
        screens[tool] = _screen([*argv, str(tmp_path / f"{tool}.m")], tmp_path)
    blocks = {t: last_block(s) for t, s in screens.items()}
    assert "3076 KiB" in blocks["ddfs"][3]
    assert blocks["ddfs"][3].split(",")[0] == blocks["ddrescue"][3].split(",")[0]
    assert blocks["ddfs"][0].split(",")[0] == blocks["ddrescue"][0].split(",")[0]  # ipos
    for t in blocks:
        assert last_preview(screens[t]) == last_preview(screens["ddrescue"]), t
    assert len(last_preview(screens["ddfs"])) == 5
    assert " slow reads:        0," in screens["ddfs"]


def last_preview(raw: str) -> list[str]:
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "\n", raw.replace("\r", "\n"))
    lines = [ln for ln in text.split("\n") if ln.strip()]
    start = max(i for i, ln in enumerate(lines) if ln.startswith("Data preview:"))
    return lines[start + 1 : start + 6]


# ---------------------------------------------------------------------------------- identity
def test_source_identity(tmp_path: Path, infile: Path) -> None:
    """ddfs records the source in a comment ddrescue and ddrescuelog skip; resuming against a
    source of another size is refused (exit 1, map untouched) unless ``--allow-other-source``,
    and a map written by ddrescue (no identity) resumes as before."""
    out, mapf = tmp_path / "o", tmp_path / "m"
    subprocess.run(
        [DDFS, "rescue", "-q", "-s", "1Mi", str(infile), str(out), str(mapf)], check=True
    )
    lines = [ln for ln in mapf.read_text().splitlines() if ln.startswith(PREFIX)]
    assert lines == [Identity(size=SIZE).line()]
    assert subprocess.run([DDRESCUELOG, "-t", str(mapf)], capture_output=True).returncode == 0
    other = make_input(tmp_path / "other.img", SIZE + 4096, seed=1)
    before = mapf.read_bytes()
    r = subprocess.run(
        [DDFS, "rescue", "-q", str(other), str(out), str(mapf)], capture_output=True, text=True
    )
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Not the source this mapfile was written for (size 2101248, not 2097152" in r.stderr
    assert mapf.read_bytes() == before
    r = subprocess.run([DDRESCUE, "-q", str(other), str(out), str(mapf)])
    assert r.returncode == 0  # ddrescue ignores the comment
    mapf.write_bytes(before)
    r = subprocess.run(
        [DDFS, "rescue", "-q", "--allow-other-source", str(other), str(out), str(mapf)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert Identity(size=SIZE + 4096).line() in mapf.read_text()


def test_identity_fields() -> None:
    """The serial decides when both sides know it (a dock may show another model, sector size
    or, after an HPA change, size); without serials the size does, except for an image file
    completed with -C; model and sector size never refuse."""
    a = Identity(1000, 512, 'WDC "WD10"', "S1", device=True)
    assert Identity.parse(a.line()) == a
    assert a.difference(Identity(2000, 4096, "USB dock", "S1", device=True)) == ""
    assert a.difference(Identity(1000)) == ""  # unknown fields are not compared
    assert "serial" in a.difference(Identity(1000, 512, 'WDC "WD10"', "S2", device=True))
    assert "size" in Identity(1000, device=True).difference(Identity(2000, device=True), True)
    assert "size" in Identity(1000).difference(Identity(2000))
    assert Identity(1000).difference(Identity(2000), complete_only=True) == ""
    assert Identity(5, model="caf\u00e9").line().isascii()
    assert Identity.parse("# Command line: x") is None


def test_log_file_that_cannot_be_opened(tmp_path: Path, infile: Path) -> None:
    """ddrescue's message and exit status; no traceback."""
    for kind in ("events", "rates", "reads"):
        d = tmp_path / kind
        r = both(d, infile, [f"--log-{kind}={tmp_path}/missing/x"], quiet=False)
        assert r["ddrescue"].returncode == r["ddfs"].returncode == 1
        assert message(r["ddfs"].stderr) == message(r["ddrescue"].stderr)
        assert f"Can't open file for logging {kind}" in r["ddfs"].stderr


def test_names_latin1_cannot_hold(tmp_path: Path, infile: Path) -> None:
    """An output named in another script: the map is still saved (its comment shows '?')."""
    out = tmp_path / "\u65e5\u672c.img"
    r = subprocess.run(
        [DDFS, "rescue", "-q", str(infile), str(out), str(tmp_path / "m")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert files_equal(infile, out)
    assert subprocess.run([DDRESCUELOG, "-t", str(tmp_path / "m")]).returncode == 0


@pytest.mark.fuse
def test_mount_ask_declined(tmp_path: Path, infile: Path) -> None:
    """``ddfs mount --ask``: the same prompt; no answer, no mount, nothing written."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(
        [DDFS, "mount", "--ask", str(infile), str(tmp_path / "o"), str(tmp_path / "m"), str(mnt)],
        input="n\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1, r.stderr
    assert "Proceed (y/N)? " in r.stdout
    assert not (tmp_path / "o").exists() and not (tmp_path / "m").exists()
    assert not os.path.ismount(mnt)


def test_log_times_past_a_minute(tmp_path: Path) -> None:
    """The logs write run times as ddrescue's loggers do (``1m:05s``, ``1h:00m:00s``), not as
    the status screen does (``1m  5s``)."""
    from engine.rescue.readlog import ReadLog
    from engine.rescue.runlogs import dhms

    assert [dhms(t) for t in (5, 65, 3600, 90061)] == [
        "5s",
        "1m:05s",
        "1h:00m:00s",
        "1d:01h:01m:01s",
    ]
    log = ReadLog(str(tmp_path / "reads.log"), "ddfs rescue x y")
    log.phase("Copying non-tried blocks... Pass 1 (forwards)", 65.4)
    log.read(0, 512, 512, 0, 130.0)
    log.close()
    lines = (tmp_path / "reads.log").read_text().splitlines()
    assert "# 1m:05s  Copying non-tried blocks... Pass 1 (forwards)" in lines
    assert "# 2m:10s" in lines
