"""The status screen on a terminal (behaviour 35): ddrescue's seven-line block, same layout."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ddfs_cmd
from tests.mountproc import status, wait_for
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


def rendered_lines(raw: str) -> list[str]:
    """What the terminal showed, line by line (escape sequences and carriage returns split)."""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "\n", raw.replace("\r", "\n"))
    return [ln for ln in text.split("\n") if ln.strip() and not ln.startswith("Script ")]


@pytest.mark.fuse
def test_mount_screen_fits_80_columns_and_says_finished(tmp_path: Path) -> None:
    """Issue 16, items 3 and 4: under ``ddfs mount`` on an 80x30 terminal no line is wider than
    80 columns (the on-demand and tiers lines wrapped, leaving stale lines), and once the
    schedule is over (``-r1`` here) the screen says Finished while the mount goes on."""
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as fh:
        fh.truncate(24 << 20)
    subprocess.run(["sfdisk", "-q", str(disk)], input="label: gpt\n,,L\n", text=True, check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "offset=1048576", str(disk), "20M"], check=True)
    bad = tmp_path / "bad.map"
    write_testmap(bad, 24 << 20, [(12 << 20, 4096)])
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    log = tmp_path / "typescript"
    argv = [*ddfs_cmd("mount"), "-r1", "-H", str(bad), str(disk), str(tmp_path / "o")]
    command = "stty cols 80 rows 30; exec " + " ".join([*argv, str(tmp_path / "m"), str(mnt)])
    proc = subprocess.Popen(
        ["script", "-q", "-f", "-e", "-c", command, str(log)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: (mnt / "status.json").exists(), 60, "not mounted")
        wait_for(lambda: status(mnt)["phase"] == "finished", 60, "the rescue did not end")
        time.sleep(1.5)
        shown = rendered_lines(log.read_text(errors="replace"))
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True, timeout=30)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert max(len(ln) for ln in shown) <= 80, [ln for ln in shown if len(ln) > 80]
    last_ipos = max(i for i, ln in enumerate(shown) if ln.lstrip().startswith("ipos:"))
    assert any(ln.startswith("Finished") for ln in shown[last_ipos:]), shown[last_ipos:]
