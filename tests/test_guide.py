"""Every command of the user guide (``docs/guide.md``) runs, as written, in a test bed.

The guide's ```` ```sh ```` blocks use a fixed cast, which the test bed provides:

* ``/dev/sdX``: a failing disk (a ``ddfs simulate`` disk behind a read-only loop device): a GPT
  disk whose partition 1 (``/dev/sdX1``, its own loop device) holds ext4 with files, and a few
  bad sectors; ``/dev/sdZ`` is a second damaged copy of the same disk, bad elsewhere and 1 MiB
  shorter (it lost its end);
* ``/dev/sdY``: a spare disk of the same size (a writable loop device);
* ``/dev/sr0``: a CD-ROM with 2048-byte sectors (a read-only loop device);
* ``good.img`` (the disk's image) and ``bad.map`` (its bad areas as a ddrescue test map) in the
  working directory; ``/mnt/rescue``, ``/mnt/files``, ``/mnt/sim`` are empty directories.

Each section (``##``) runs in a fresh working directory, its blocks in order, each line through
``bash`` with the cast's names replaced by the test bed's. A line must exit 0, unless its
comment says ``# exit N``. A line ending in ``&`` runs in the background: a ``ddfs mount`` or
``ddfs simulate`` is waited for until mounted (a mount until its ``p1`` shows), and stopped by
the ``umount``/``fusermount3 -u`` line that follows (or, failing that, at the end of the block,
which is an error).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fsimages import gpt_ext4_disk
from tests.oracle import MiB, write_test_map
from tests.simdisk import abort_fuse, is_mounted, loop_device, simulated_disk

GUIDE = Path(
    os.environ.get("DDFS_GUIDE") or Path(__file__).resolve().parent.parent / "docs" / "guide.md"
)
BIN = Path(__file__).resolve().parent.parent / ".venv" / "bin"
SIZE = 32 * MiB
P1_START, P1_SIZE = 1 * MiB, 24 * MiB
BAD = [(P1_START + 10 * MiB, 0x400), (P1_START + 20 * MiB + 0x10000, 0x200), (29 * MiB, 0x1000)]
BAD_COPY2 = [(P1_START + 4 * MiB, 0x200), (30 * MiB, 0x800)]


@dataclass
class Section:
    title: str
    blocks: list[list[str]] = field(default_factory=list)


def sections(text: str) -> list[Section]:
    """The ``sh`` blocks of the guide, by ``##`` section (continuation lines joined)."""
    out: list[Section] = []
    block: list[str] | None = None
    for line in text.splitlines():
        if block is None and line.startswith("## "):
            out.append(Section(line[3:].strip()))
        elif line.strip() == "```sh":
            block = []
        elif block is not None and line.strip() == "```":
            if out:
                out[-1].blocks.append(block)
            block = None
        elif block is not None:
            if block and block[-1].endswith("\\"):
                block[-1] = block[-1][:-1] + " " + line.strip()
            elif line.strip() and not line.lstrip().startswith("#"):
                block.append(line.strip())
    return [s for s in out if s.blocks]


def test_guide_has_runnable_blocks() -> None:
    found = sections(GUIDE.read_text())
    assert sum(len(b) for s in found for b in s.blocks) >= 30


# ---------------------------------------------------------------------------------- test bed
def _build_disk(path: Path, work: Path) -> None:
    tree = work / "tree"
    (tree / "docs").mkdir(parents=True)
    for i in range(40):
        (tree / "docs" / f"report-{i}.txt").write_bytes(os.urandom(20_000 + 3000 * i))
    (tree / "photo.jpg").write_bytes(os.urandom(3 * MiB))
    gpt_ext4_disk(path, tree, SIZE, P1_START, P1_SIZE)


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The cast: device names and mount points, mapped to the test bed's."""
    root = tmp_path_factory.mktemp("guide")
    disk = root / "good.img"
    _build_disk(disk, root)
    write_test_map(root / "bad.map", SIZE, BAD)
    short = root / "short.img"  # the second copy lost its last MiB
    with open(disk, "rb") as src, open(short, "wb") as dst:
        dst.write(src.read(SIZE - MiB))
    write_test_map(root / "bad2.map", SIZE - MiB, BAD_COPY2)
    spare = root / "spare.img"
    with open(spare, "wb") as fh:
        fh.truncate(SIZE)
    cd = root / "cd.iso"
    cd.write_bytes(os.urandom(4 * MiB))
    for d in ("sim1", "sim2"):
        (root / d).mkdir()
    with ExitStack() as stack:
        sim1 = stack.enter_context(simulated_disk(disk, root / "sim1", root / "bad.map"))
        sim2 = stack.enter_context(simulated_disk(short, root / "sim2", root / "bad2.map"))
        cast = {
            "/dev/sdX1": stack.enter_context(loop_device(sim1, offset=P1_START, size=P1_SIZE)),
            "/dev/sdX": stack.enter_context(loop_device(sim1)),
            "/dev/sdZ": stack.enter_context(loop_device(sim2)),
            "/dev/sdY": stack.enter_context(loop_device(spare, read_only=False)),
            "/dev/sr0": stack.enter_context(loop_device(cd)),
            "@root": str(root),
        }
        yield cast


def _substitute(line: str, cast: dict[str, str], mnt: dict[str, str]) -> str:
    names = {**cast, **mnt}
    for name in sorted((n for n in names if not n.startswith("@")), key=len, reverse=True):
        line = re.sub(re.escape(name) + r"(?!\w)", names[name], line)
    return line


@dataclass
class Background:
    proc: subprocess.Popen[bytes]
    line: str
    mountpoint: str | None


def _wait_ready(bg: Background, cwd: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if bg.proc.poll() is not None:
            raise AssertionError(f"{bg.line}: exited with {bg.proc.returncode}")
        if bg.mountpoint is None:
            return
        # the simulated disk's file, or the mount's partition files (the tables come first)
        wanted = "disk" if " simulate " in f" {bg.line} " else "p1"
        if is_mounted(bg.mountpoint) and os.path.exists(os.path.join(bg.mountpoint, wanted)):
            return
        time.sleep(0.05)
    raise AssertionError(f"{bg.line}: not ready within 60 s")


def _stop(bg: Background) -> None:
    if bg.proc.poll() is None:
        bg.proc.send_signal(signal.SIGINT)
        try:
            bg.proc.wait(30)
        except subprocess.TimeoutExpired:
            bg.proc.kill()
            bg.proc.wait(10)
    if bg.mountpoint and is_mounted(bg.mountpoint):
        abort_fuse(bg.mountpoint)


def run_section(section: Section, cast: dict[str, str], work: Path) -> None:
    """Run a section's blocks in ``work`` (see the module docstring)."""
    root = Path(cast["@root"])
    for name in ("good.img", "bad.map"):
        os.link(root / name, work / name)
    mnt = {}
    for name in ("/mnt/rescue", "/mnt/files", "/mnt/sim"):
        path = work / name.split("/")[-1]
        path.mkdir()
        mnt[name] = str(path)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    running: list[Background] = []
    try:
        for block in section.blocks:
            for raw in block:
                expect = 0
                m = re.search(r"#\s*exit (\d+)\b", raw)
                if m:
                    expect = int(m.group(1))
                line = _substitute(raw, cast, mnt)
                if line.rstrip().endswith("&"):
                    cmd = line.rstrip()[:-1].split("  #")[0].strip()
                    words = shlex.split(cmd)
                    mountpoint = None
                    if words[:2] in (["ddfs", "mount"], ["ddfs", "simulate"]):
                        mountpoint = next(w for w in reversed(words) if w.startswith(str(work)))
                    proc = subprocess.Popen(
                        ["bash", "-c", "exec " + cmd],
                        cwd=work,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    bg = Background(proc, raw, mountpoint)
                    running.append(bg)
                    _wait_ready(bg, work)
                    continue
                res = subprocess.run(
                    ["bash", "-c", line],
                    cwd=work,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    stdin=subprocess.DEVNULL,
                )
                assert res.returncode == expect, (
                    f"[{section.title}] {raw}\n  ran: {line}\n  exit {res.returncode}\n"
                    f"  stdout: {res.stdout[-2000:]}\n  stderr: {res.stderr[-2000:]}"
                )
                words = shlex.split(line.split("  #")[0])
                if words and words[0] in ("umount", "fusermount3"):
                    target = words[-1]
                    for bg in [b for b in running if b.mountpoint == target]:
                        code = bg.proc.wait(60)
                        assert code == 0, f"{bg.line}: exit {code} after unmount"
                        running.remove(bg)
            stray = [b.line for b in running if b.mountpoint is not None]
            assert not stray, f"[{section.title}] still mounted at the end of a block: {stray}"
    finally:
        for bg in running:
            _stop(bg)


def _section_ids() -> list[str]:
    return [s.title for s in sections(GUIDE.read_text())]


@pytest.mark.fuse
@pytest.mark.parametrize("title", _section_ids())
def test_guide_section(title: str, bed: dict[str, str], tmp_path: Path) -> None:
    section = next(s for s in sections(GUIDE.read_text()) if s.title == title)
    run_section(section, bed, tmp_path)
