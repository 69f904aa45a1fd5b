"""The status screen on a terminal (behaviour 35): ddrescue's seven-line block, same layout."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pyte
import pytest

from tests.conftest import ddfs_cmd
from tests.mountproc import status, wait_for
from tests.simdisk import simulated_disk
from tests.test_mount import write_testmap


def last_block(raw: str) -> list[str]:
    """The last status block drawn: the six figure lines, with escape codes removed."""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "\n", raw.replace("\r", "\n"))
    lines = [ln for ln in text.split("\n") if ln.strip()]
    start = max(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ipos:"))
    return lines[start : start + 6]


def layout(line: str) -> list[tuple[int, str]]:
    """Where each label starts: the layout without the figures."""
    return [(m.start(), m.group()) for m in re.finditer(r"[a-z][a-z -]*[a-z]:", line)]


def on_a_terminal(argv: list[str], tmp_path: Path) -> str:
    log = tmp_path / "typescript"
    subprocess.run(
        ["script", "-q", "-e", "-c", " ".join(argv), str(log)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return log.read_text(errors="replace")


def test_same_layout_as_ddrescue(tmp_path: Path, random_file) -> None:
    infile = random_file(4 << 20)
    ours = last_block(
        on_a_terminal(
            [*ddfs_cmd("rescue"), str(infile), str(tmp_path / "o1"), str(tmp_path / "m1")], tmp_path
        )
    )
    theirs = last_block(
        on_a_terminal(
            ["ddrescue", str(infile), str(tmp_path / "o2"), str(tmp_path / "m2")], tmp_path
        )
    )
    assert [layout(ln) for ln in ours] == [layout(ln) for ln in theirs]
    assert "pct rescued:  100.00%" in ours[4] and "pct rescued:  100.00%" in theirs[4]
    assert "rescued:    4194 kB" in ours[3] and "rescued:    4194 kB" in theirs[3]


# where the screen draws its block: a repaint (cursor up, erase), or a new block on a new line
DRAW = re.compile(rb"(?=(?:\r\x1b\[A)+\r\x1b\[J)|(?<=\n)(?=     ipos:)")


def screens(raw: bytes, columns: int = 80, rows: int = 24) -> list[list[str]]:
    """The terminal as a person sees it (a VT100 emulator of ``columns`` x ``rows``) before the
    first block, then after each drawing of the block: the start, every moment mid-way, and
    the end."""
    if raw.startswith(b"Script started"):  # script's own lines (not the program's)
        raw = raw.split(b"\n", 1)[1]
    raw = raw[: raw.rfind(b"\nScript done")] if b"\nScript done" in raw else raw
    screen = pyte.Screen(columns, rows)
    stream = pyte.ByteStream(screen)
    out = []
    for piece in DRAW.split(raw):
        stream.feed(piece)
        out.append([row.rstrip() for row in screen.display])
    return out


BLOCK = {"ipos", "opos", "non-tried", "rescued", "pct rescued", "tiers", "on-demand", "overlay"}


def _figure(row: str) -> str | None:
    """The figure a status row starts with (``ipos``, ``tiers``, ``first p1:/x``), if any."""
    key = row.split(":")[0].strip()
    if key in BLOCK or key.startswith("first ") or "time since last successful read" in row:
        return key
    return None


def check_screen(rows: list[str]) -> None:
    """No line wrapped (a wrapped line fills all 80 columns) and no stale line: each block of
    status rows (up to the message that ends it) shows each figure once, and the last row
    written is not a status row (the message line ends every drawing)."""
    assert all(len(row) < 80 for row in rows), rows
    shown = [row for row in rows if row]
    block: list[str] = []
    for row in shown:
        key = _figure(row)
        if key is None:
            if not row.startswith(" "):  # a message ends a block ("Copying...", "Finished")
                block = []
            continue
        assert key not in block, f"{key!r} twice in one block: {rows}"
        block.append(key)
    assert _figure(shown[-1]) is None, f"stale lines under the message: {rows}"


def disk_with_photos(tmp_path: Path) -> tuple[Path, Path]:
    """24 MiB, GPT, p1 ext4 with ``/photos`` (8 files); a test map with two bad areas."""
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as fh:
        fh.truncate(24 << 20)
    subprocess.run(["sfdisk", "-q", str(disk)], input="label: gpt\n,,L\n", text=True, check=True)
    (tmp_path / "root" / "photos").mkdir(parents=True)
    for i in range(8):
        (tmp_path / "root" / "photos" / f"p{i}.jpg").write_bytes(os.urandom(300_000))
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-d", str(tmp_path / "root"), "-E", "offset=1048576",
         str(disk), "20M"],
        check=True,
    )  # fmt: skip
    bad = tmp_path / "bad.map"
    write_testmap(bad, 24 << 20, [(12 << 20, 4096), (18 << 20, 65536)])
    return disk, bad


def test_rescue_screen_at_80x24_start_midway_end(tmp_path: Path) -> None:
    """Issue 16 item 3: ``ddfs rescue`` with metadata first and ``--first`` (its longest screen:
    the tiers line and a files-first line) on a slow failing disk, in a real terminal of 80x24
    (``script``), read back through a terminal emulator after every repaint."""
    disk, bad = disk_with_photos(tmp_path)
    (tmp_path / "sim").mkdir()
    log = tmp_path / "typescript"
    with simulated_disk(disk, tmp_path / "sim", bad, rate="6Mi") as dev:
        argv = [*ddfs_cmd("rescue"), "--first", "p1:/photos", dev, str(tmp_path / "o"),
                str(tmp_path / "m")]  # fmt: skip
        command = "stty cols 80 rows 24; exec " + " ".join(argv)
        subprocess.run(
            ["script", "-q", "-f", "-e", "-c", command, str(log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True, timeout=120,
        )  # fmt: skip
    shots = screens(log.read_bytes())
    assert len(shots) >= 3, shots  # the start, at least one moment mid-way, the end
    for rows in shots:
        check_screen(rows)
    start = [row for row in shots[1] if row]
    at = start.index("Press Ctrl-C to interrupt")  # then the first block
    assert start[at + 1].startswith("     ipos:"), start
    middle = shots[len(shots) // 2]
    assert any(row.startswith("  tiers:") for row in middle), middle
    assert any(row.startswith("  first p1:/photos:") for row in middle), middle
    end = [row for row in shots[-1] if row]
    assert end[-1] == "Finished", end
    assert any("first p1:/photos: 8 done" in row for row in end), end


@pytest.mark.fuse
def test_mount_screen_fits_80_columns_and_says_finished(tmp_path: Path) -> None:
    """Issue 16, items 3 and 4: under ``ddfs mount`` on an 80x24 terminal no line is wider than
    80 columns and no line is left stale (the on-demand and tiers lines wrapped, and the
    repaint left stale lines), at the start, mid-way and at the end; once the schedule is over
    (``-r1`` here) the screen says Finished while the mount goes on."""
    disk, bad = disk_with_photos(tmp_path)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    log = tmp_path / "typescript"
    (tmp_path / "sim").mkdir()
    with simulated_disk(disk, tmp_path / "sim", bad, rate="6Mi") as dev:
        argv = [*ddfs_cmd("mount"), "-r1", "--first", "p1:/photos", dev, str(tmp_path / "o")]
        command = "stty cols 80 rows 24; exec " + " ".join([*argv, str(tmp_path / "m"), str(mnt)])
        proc = subprocess.Popen(
            ["script", "-q", "-f", "-e", "-c", command, str(log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: (mnt / "status.json").exists(), 60, "not mounted")
            wait_for(lambda: status(mnt)["phase"] == "finished", 60, "the rescue did not end")
            time.sleep(1.5)
            shots = screens(log.read_bytes())
        finally:
            subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True, timeout=30)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert len(shots) >= 3, shots
    for rows in shots:
        check_screen(rows)
    start = [row for row in shots[1] if row]
    assert start[start.index("Press Ctrl-C to interrupt") + 1].startswith("     ipos:"), start
    end = [row for row in shots[-1] if row]
    last_ipos = max(i for i, row in enumerate(end) if row.startswith("     ipos:"))
    for line in ("  on-demand:", "  tiers:", "  first p1:/photos: 8 done"):
        assert any(row.startswith(line) for row in end[last_ipos:]), end
    assert end[-1] == "Finished", end
