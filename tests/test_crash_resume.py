"""Crash and resume: ``ddfs rescue`` and ``ddfs mount`` killed with SIGKILL at random moments.

A simulated failing disk (``ddfs simulate``: bad sectors, transfer rate, seek and error latency)
is rescued again and again; each run is killed at a random moment (from before the map exists
to deep in scraping) and simply resumed with the same command. After **every** kill:

* the mapfile on disk is accepted by GNU ``ddrescuelog -t`` (exit 0), as is every distinct
  version of it a sampler thread saw while the runs went on;
* every byte the map calls finished equals the original image in the output, and every byte it
  calls bad-sector is truly bad (the map never claims more than the truth);
* no temporary map file is left behind.

When a run ends by itself the round is checked in full (status ``+``, nothing untried, the
bad-sector areas exactly the disk's, the output equal to the image elsewhere) and a new round
starts from scratch, until the number of kills is reached. Mount runs have a reader thread
checking that every byte read through the mount is the image's (or an EIO).

The normal suite runs 8 kills on a small disk; ``make test-long`` runs 60 on a bigger one.
"""

from __future__ import annotations

import errno
import os
import random
import subprocess
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import map_lines
from tests.faults import check_map_claims, ddrescuelog_accepts, kill9, ranges_of
from tests.fsimages import merge
from tests.mountproc import status
from tests.oracle import write_test_map
from tests.simdisk import ddfs_argv, is_mounted, simulated_disk

pytestmark = pytest.mark.fuse


@dataclass
class Tally:
    """What a crash run did, for the assertions and the figures in docs/reliability.md."""

    kills: int = 0
    rescue_kills: int = 0
    mount_kills: int = 0
    rounds_completed: int = 0
    maps_checked: int = 0
    samples: set[bytes] = field(default_factory=set)
    reads_ok: int = 0
    reads_eio: int = 0
    phases_killed: dict[str, int] = field(default_factory=dict)
    temp_left: int = 0  # most temporary maps seen at once after a kill
    baks_checked: int = 0


def bad_areas(size: int, count: int, seed: int) -> list[tuple[int, int]]:
    """``count`` sector-aligned bad areas (one sector to 96 KiB), disjoint and apart."""
    rng = random.Random(seed)
    areas: list[tuple[int, int]] = []
    while len(areas) < count:
        n = rng.choice([512, 512, 1024, 4096, 0x3000, 0x10000, 0x18000])
        p = rng.randrange(1, (size - n) // 512 - 1) * 512
        if all(p + n + 512 < a or a + m + 512 < p for a, m in areas):
            areas.append((p, n))
    return sorted(areas)


class MapSampler(threading.Thread):
    """Reads the mapfile every few milliseconds and keeps each distinct content."""

    def __init__(self, path: Path, into: set[bytes]) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.into = into
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.01):
            try:
                self.into.add(self.path.read_bytes())
            except FileNotFoundError:
                pass


class Reader(threading.Thread):
    """Random reads of ``MOUNT/image`` until stopped; each must be the image's bytes or EIO."""

    def __init__(self, mnt: Path, image: bytes, seed: int, tally: Tally) -> None:
        super().__init__(daemon=True)
        self.mnt, self.image, self.tally = mnt, image, tally
        self.rng = random.Random(seed)
        self.halt = threading.Event()
        self.wrong: list[str] = []

    def run(self) -> None:
        while not self.halt.is_set() and not is_mounted(self.mnt):
            time.sleep(0.01)
        try:
            fd = os.open(self.mnt / "image", os.O_RDONLY)
        except OSError:
            return  # killed before or while mounting
        try:
            while not self.halt.is_set():
                pos = self.rng.randrange(0, len(self.image) // 512) * 512
                n = self.rng.choice([512, 4096, 65536])
                try:
                    data = os.pread(fd, n, pos)
                except OSError as exc:
                    if exc.errno != errno.EIO:
                        return  # the server was killed: ENOTCONN / ECONNABORTED
                    self.tally.reads_eio += 1
                    continue
                if data != self.image[pos : pos + len(data)]:
                    self.wrong.append(f"read at {pos:#x}+{n} returned wrong data")
                self.tally.reads_ok += 1
        finally:
            with suppress(OSError):
                os.close(fd)


ORDER = "?*/-+"


LIVE_PHASES = {"copying": "?", "trimming": "*", "scraping": "/", "retrying": "-"}


def live_phase(kind: str, mp: Path, mnt: Path) -> str:
    """The phase a run is in: the saved map's, or for a mount its live ``status.json`` (a mount
    that finished its schedule saves the map only when it stops)."""
    if kind == "mount" and is_mounted(mnt):
        try:
            return LIVE_PHASES.get(status(mnt)["phase"], "+")
        except (OSError, ValueError, KeyError):
            pass
    return phase_of(mp)


def wait_for_kill_moment(
    proc: subprocess.Popen[bytes],
    kind: str,
    mp: Path,
    mnt: Path,
    delay: float,
    target: str | None,
    rng: random.Random,
) -> int | None:
    """Wait ``delay`` seconds, or until the run reaches phase ``target`` (or a later one) and
    then a random fraction of ``delay``; return the exit status if the run ended first."""
    if target is not None:
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            phase = live_phase(kind, mp, mnt)
            if phase in ORDER and ORDER.index(phase) >= ORDER.index(target):
                break
            time.sleep(0.02)
        delay *= rng.random() / 2
    try:
        return proc.wait(delay)
    except subprocess.TimeoutExpired:
        return None


def phase_of(mapfile: Path) -> str:
    try:
        return map_lines(mapfile)[0].split()[1]
    except (FileNotFoundError, IndexError):
        return "none"


def temp_files(workdir: Path) -> list[str]:
    return sorted(p.name for p in workdir.iterdir() if ".tmp" in p.name)


def crash_run(
    tmp_path: Path, size: int, nbad: int, kills: int, seed: int, max_delay: float, rate: str
) -> Tally:
    """Kill/resume until ``kills`` kills; returns the tally (see the module docstring)."""
    rng = random.Random(seed)
    image_path = tmp_path / "disk.img"
    image = random.Random(seed).randbytes(size)
    image_path.write_bytes(image)
    bad = bad_areas(size, nbad, seed)
    truth = merge([(p, p + n) for p, n in bad])
    write_test_map(tmp_path / "bad.map", size, bad)
    (tmp_path / "sim").mkdir()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    tally = Tally()
    killed: list[int] = []
    history: list[str] = []  # the map after each run of the round (shown when a check fails)
    rnd = 0
    with simulated_disk(
        image_path, tmp_path / "sim", tmp_path / "bad.map", rate=rate, seek_ms=1, error_ms=2
    ) as dev:
        out, mp = work / f"out{rnd}", work / f"map{rnd}"
        sampler = MapSampler(mp, tally.samples)
        sampler.start()
        try:
            while tally.kills < kills:
                kind = rng.choice(["rescue", "mount"])
                interval = rng.choice(["0", "1", "1,5"])  # 1,5: sync saves rotate MAP.bak
                delay = rng.uniform(0.05, max_delay)
                # most kills at a random time from the start, some at a random moment once the
                # map shows that a later phase (trimming or scraping) has begun
                target = rng.choice([None, None, None, "*", "/"])
                extra = rng.choice([[], [], ["-r1"], ["-R"]])  # retry passes, reverse passes
                opts = ["-q", f"--mapfile-interval={interval}", *extra]
                if kind == "rescue":
                    argv = ddfs_argv("rescue", *opts, dev, str(out), str(mp))
                else:
                    argv = ddfs_argv("mount", *opts, dev, str(out), str(mp), str(mnt))
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
                reader = Reader(mnt, image, rng.randrange(1 << 30), tally)
                if kind == "mount":
                    reader.start()
                try:
                    rc = wait_for_kill_moment(proc, kind, mp, mnt, delay, target, rng)
                    phase = live_phase(kind, mp, mnt)
                finally:
                    kill9(proc, mnt)
                    reader.halt.set()
                    if reader.is_alive():
                        reader.join(15)
                assert not reader.is_alive(), "a reader hung on the dead mount"
                assert not reader.wrong, reader.wrong[:5]
                killed.append(proc.pid)
                if rc is None:
                    tally.kills += 1
                    tally.rescue_kills += kind == "rescue"
                    tally.mount_kills += kind == "mount"
                    tally.phases_killed[phase] = tally.phases_killed.get(phase, 0) + 1
                else:
                    assert kind == "rescue" and rc == 0, f"{kind} exited with {rc}"
                if mp.exists():
                    history.append(f"after {kind} (rc={rc}, {delay:.2f}s):\n{mp.read_text()}")
                    res = ddrescuelog_accepts(mp)
                    assert res.returncode == 0, f"ddrescuelog -t rejects the map: {res.stderr}"
                    check_map_claims(mp, out, image, truth)
                    tally.maps_checked += 1
                bak = Path(f"{mp}.bak")
                if bak.exists():  # the previous sync save: just as truthful
                    res = ddrescuelog_accepts(bak)
                    assert res.returncode == 0, f"ddrescuelog -t rejects MAP.bak: {res.stderr}"
                    check_map_claims(bak, out, image, truth)
                    tally.baks_checked += 1
                # a kill during a save may leave that run's temporary map; the next run that
                # saves removes it
                left = temp_files(work)
                tally.temp_left = max(tally.temp_left, len(left))
                dead = {f".tmp{pid}" for pid in killed}
                assert all(n[n.rindex(".tmp") :].removesuffix(".bak") in dead for n in left), left
                # (a run resumed in trimming may end "Finished" with '/' left, as ddrescue's
                # does: the next run scrapes it)
                if rc == 0 and not ranges_of(mp, "?*/"):  # the round is over: start afresh
                    finish_round(out, mp, image, truth, history)
                    tally.rounds_completed += 1
                    rnd += 1
                    sampler.halt.set()
                    sampler.join()
                    out, mp = work / f"out{rnd}", work / f"map{rnd}"
                    sampler = MapSampler(mp, tally.samples)
                    sampler.start()
            # resume to the end (a second run scrapes what a run resumed in trimming left)
            for _ in range(3):
                res = subprocess.run(
                    ddfs_argv("rescue", "-q", dev, str(out), str(mp)),
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                assert res.returncode == 0, res.stderr
                if not ranges_of(mp, "?*/"):
                    break
            finish_round(out, mp, image, truth, history)
            tally.rounds_completed += 1
        finally:
            sampler.halt.set()
            sampler.join()
    assert not is_mounted(mnt)
    for i, text in enumerate(sorted(tally.samples)):
        sample = tmp_path / f"sample{i}.map"
        sample.write_bytes(text)
        res = ddrescuelog_accepts(sample)
        assert res.returncode == 0, f"an intermediate map was rejected: {res.stderr}\n{text!r}"
        sample.unlink()
    return tally


def finish_round(
    out: Path, mp: Path, image: bytes, truth: list[tuple[int, int]], history: list[str]
) -> None:
    """A completed rescue: status ``+``, only ``+`` and ``-``, the bad areas exactly true."""
    assert phase_of(mp) == "+"
    assert not ranges_of(mp, "?*/"), "unfinished blocks left after a complete run:\n" + (
        "\n".join(history[-3:])
    )
    history.clear()
    assert ranges_of(mp, "-") == truth, "bad areas differ from the disk's"
    done, badbytes = check_map_claims(mp, out, image, truth)
    assert done + badbytes == len(image)
    assert not temp_files(mp.parent), f"temporary maps left: {temp_files(mp.parent)}"


def report(name: str, tally: Tally, seconds: float) -> None:
    print(
        f"\n{name}: {tally.kills} kills ({tally.rescue_kills} rescue, {tally.mount_kills} mount),"
        f" phases at kill {dict(sorted(tally.phases_killed.items()))},"
        f" {tally.rounds_completed} rounds completed, {tally.maps_checked} maps checked after"
        f" kills (+{tally.baks_checked} MAP.bak), {len(tally.samples)} distinct intermediate"
        f" maps accepted by ddrescuelog,"
        f" mount reads {tally.reads_ok} ok / {tally.reads_eio} EIO,"
        f" at most {tally.temp_left} stale temporary map(s) at once, {seconds:.1f} s"
    )


def test_kill_and_resume_short(tmp_path: Path) -> None:
    start = time.monotonic()
    tally = crash_run(tmp_path, 4 << 20, 6, kills=8, seed=7, max_delay=1.2, rate="4Mi")
    report("crash/resume (short)", tally, time.monotonic() - start)
    assert tally.kills == 8
    assert tally.rescue_kills and tally.mount_kills


@pytest.mark.long
@pytest.mark.timeout(1200)
def test_kill_and_resume_60_times(tmp_path: Path) -> None:
    start = time.monotonic()
    tally = crash_run(tmp_path, 20 << 20, 24, kills=60, seed=11, max_delay=2.5, rate="8Mi")
    report("crash/resume (long)", tally, time.monotonic() - start)
    assert tally.kills == 60
    assert tally.rescue_kills >= 15 and tally.mount_kills >= 15
    assert len(tally.phases_killed) >= 3, "kills should land in several phases"
