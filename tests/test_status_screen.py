"""The status screen on a terminal (behaviour 35): ddrescue's seven-line block, same layout."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.conftest import ddfs_cmd


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
