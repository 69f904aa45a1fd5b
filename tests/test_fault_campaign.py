"""Seeded fault campaign (issue 17): random faults hit ``ddfs mount`` and ``ddfs rescue``, run
after run, and each run checks what the fault left behind and that resuming ends as a clean run.

Every run has its own seed: the fault is ``KINDS[seed % 5]`` (so the runs spread evenly), and
``random.Random(seed)`` picks the disk, the moment and the options, so a failure is replayed
with ``DDFS_CAMPAIGN_SEED=<seed>`` (the timing still varies). The faults:

* ``kill-mount``: ``kill -9`` of ``ddfs mount`` at a random moment while threads read
  ``MNT/image`` and ``MNT/p1`` (every read must be the image's bytes, or EIO);
* ``kill-loop``: the same with ``--loop``, the ext4 partition's loop device mounted read-only
  (``mount -o ro``) and a thread reading its files;
* ``kill-overlay``: the same with ``--overlay FILE`` and a thread writing numbered sectors into
  ``MNT/image``, fsyncing now and then;
* ``full-target``: OUTFILE (and sometimes the map) on a tmpfs that fills up at a random point,
  under ``ddfs rescue`` or ``ddfs mount``;
* ``source-vanish``: the simulated disk's server killed, or its FUSE connection aborted, at a
  random moment of ``ddfs rescue`` or ``ddfs mount``.

A quarter of the killed mounts first see a second ``ddfs rescue`` (or ``ddfs mount``) started
on the same mapfile, which must be refused. After each fault: the map (and ``MAP.bak``, and the
overlay's map) is accepted by ``ddrescuelog -t`` and by ``parse_mapfile``; the map claims
nothing the output does not hold (``check_map_claims``); the overlay map claims only sectors
its data file holds, and every fsynced write. A killed mount is left as a crash leaves it (a
dead mount, maybe loop devices over it), and the next run is the same ``ddfs mount`` again;
after the other faults it is ``ddfs rescue`` or ``ddfs mount``. The next run starts and stops
(a mount once its schedule is over): then no ddfs mount, loop device or process of the run may
be left. Last, the rescue is completed and compared with a clean ``ddfs rescue`` of the same
disk: the same map, the same bytes in every finished area.

A failed check does not end the campaign: each is kept with its seed and the test fails at the
end with the list. ``DDFS_CAMPAIGN_RUNS`` (default 200) sets the number of runs (seeds 1700
on), ``DDFS_CAMPAIGN_SEED=S[,S...]`` runs only those seeds. Every mount, loop device, tmpfs and
process a run makes is removed in ``finally``, by its handle or path.
"""

from __future__ import annotations

import errno
import faulthandler
import json
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine.errors import DdfsError, MapfileError
from engine.map.mapfile import parse_mapfile
from tests.conftest import map_lines
from tests.faults import (
    check_map_claims,
    ddrescuelog_accepts,
    kill9,
    leftover_processes,
    ranges_of,
    resize_tmpfs,
    tmpfs,
)
from tests.fsimages import gpt_ext4_disk, merge, populate_tree
from tests.mountproc import status
from tests.oracle import write_test_map
from tests.simdisk import (
    SimulateProcess,
    abort_fuse,
    ddfs_argv,
    fuse_connection,
    is_mounted,
    simulate_process,
)
from tests.test_source_vanish import vanish

pytestmark = [pytest.mark.fuse, pytest.mark.long]

MiB = 1 << 20
SECTOR = 512
RUNS = int(os.environ.get("DDFS_CAMPAIGN_RUNS", "200"))
FIRST_SEED = 1700
KINDS = ("kill-mount", "kill-loop", "kill-overlay", "full-target", "source-vanish")
P1 = (1 * MiB, 12 * MiB)  # the ext4 partition of the ext4 disks: (start, size)
RUN_WATCHDOG = 300.0  # a run taking longer dumps every thread's stack (a hang)
KEEP_FAILED = 4  # the directories of the first failed runs are kept for a look
Range = tuple[int, int]


@dataclass(frozen=True)
class DiskSpec:
    name: str
    size: int
    ext4: bool  # GPT with an ext4 partition at P1, random data after it; else random data
    nbad: int
    seed: int


DISKS = (
    DiskSpec("plain-16M", 16 * MiB, False, 5, 1),
    DiskSpec("plain-24M", 24 * MiB, False, 7, 2),
    DiskSpec("ext4-24M", 24 * MiB, True, 4, 3),
    DiskSpec("ext4-32M", 32 * MiB, True, 6, 4),
)


@dataclass
class Disk:
    """A built disk: its image, bad areas, and the result of a clean ``ddfs rescue``."""

    spec: DiskSpec
    image: Path
    badmap: Path
    truth: list[Range]
    tree: Path | None
    clean_out: Path
    clean_map: Path

    @property
    def p1(self) -> Range | None:
        return (P1[0], P1[0] + P1[1]) if self.spec.ext4 else None


@dataclass
class Failure:
    seed: int
    kind: str
    check: str
    detail: str


@dataclass
class Tally:
    """What the campaign did: runs, checks passed, events seen, failures."""

    kinds: Counter[str] = field(default_factory=Counter)
    passed: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


@dataclass
class Run:
    """One run of the campaign: its seed, choices, paths and what it has seen so far."""

    seed: int
    rng: random.Random
    kind: str
    disk: Disk
    dir: Path
    tally: Tally
    image: bytes
    rate: str
    interval: str
    out: Path = Path()
    mp: Path = Path()
    mnt: Path = Path()
    sim_dir: Path = Path()
    dev: str = ""
    sim: SimulateProcess | None = None
    opts: list[str] = field(default_factory=list)  # the faulted mount's own options
    overlay: Path | None = None
    writer: Writer | None = None
    conns: set[int] = field(default_factory=set)  # FUSE connections of its ddfs mounts
    loops: set[str] = field(default_factory=set)  # loop devices its ddfs announced
    loops_before: set[str] = field(default_factory=set)  # loop devices before the run
    failed: bool = False

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        if ok:
            self.tally.passed[name] += 1
        else:
            self.failed = True
            self.tally.failures.append(Failure(self.seed, self.kind, name, detail.strip()))
            print(f"\n  FAIL seed={self.seed} kind={self.kind}: {name}\n    {detail.strip()[:600]}")
        return ok

    def event(self, name: str, count: int = 1) -> None:
        self.tally.events[name] += count


# ------------------------------------------------------------------ disks and clean runs
def bad_places(rng: random.Random, lo: int, hi: int, count: int) -> list[Range]:
    """``count`` sector-aligned ``(pos, size)`` bad areas in ``[lo, hi)``, 64 KiB apart."""
    out: list[Range] = []
    while len(out) < count:
        n = rng.choice([512, 1024, 4096, 0x3000, 0x10000])
        p = rng.randrange(lo // SECTOR, (hi - n) // SECTOR) * SECTOR
        if all(p + n + 0x10000 < a or a + m + 0x10000 < p for a, m in out):
            out.append((p, n))
    return sorted(out)


def build_disk(spec: DiskSpec, where: Path) -> Disk:
    """Make the image and its bad map, and rescue it once cleanly (no rate limit)."""
    where.mkdir(parents=True)
    rng = random.Random(spec.seed)
    image = where / "disk.img"
    tree = None
    if spec.ext4:
        tree = where / "tree"
        populate_tree(tree, nfiles=40, depth=4, big=(300_000,), seed=spec.seed)
        gpt_ext4_disk(image, tree, spec.size, *P1)
        lo, hi = sum(P1), spec.size - MiB  # (the backup GPT is in the last MiB)
        with open(image, "r+b") as fh:
            fh.seek(lo)
            fh.write(rng.randbytes(hi - lo))
        lo += 0x10000
    else:
        image.write_bytes(rng.randbytes(spec.size))
        lo, hi = 0x10000, spec.size
    bad = bad_places(rng, lo, hi, spec.nbad)
    badmap = write_test_map(where / "bad.map", spec.size, bad)
    truth = merge([(p, p + n) for p, n in bad])
    disk = Disk(spec, image, badmap, truth, tree, where / "clean.out", where / "clean.map")
    (where / "sim").mkdir()
    with simulate_process(image, where / "sim", badmap, rate="0") as sim:
        for _ in range(3):
            argv = ddfs_argv("rescue", "-q", sim.disk, str(disk.clean_out), str(disk.clean_map))
            res = subprocess.run(argv, capture_output=True, text=True, timeout=300)
            assert res.returncode == 0, f"clean run of {spec.name}: {res.stderr}"
            if not ranges_of(disk.clean_map, "?*/"):
                break
    assert ranges_of(disk.clean_map, "-") == truth, f"clean run of {spec.name}: bad areas"
    assert phase_of(disk.clean_map) == "+"
    return disk


class Disks:
    """The disks, each built (and rescued cleanly) the first time a run asks for it."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.built: dict[int, Disk] = {}

    def get(self, index: int) -> Disk:
        if index not in self.built:
            spec = DISKS[index]
            self.built[index] = build_disk(spec, self.where / spec.name)
        return self.built[index]


def phase_of(mapfile: Path) -> str:
    try:
        return map_lines(mapfile)[0].split()[1]
    except (OSError, IndexError):
        return "none"


# ------------------------------------------------------------------ processes and mounts
class DdfsProcess(SimulateProcess):
    """A ddfs process (tests/simdisk.py's handle) whose :meth:`stop` leaves alone what a process
    that already ended left behind: a dead mount, loop devices. Clearing them is the next run's
    job, and what it did not clear is checked, then removed by :func:`safety_net`."""

    def stop(self) -> None:
        if self.proc.poll() is None:
            super().stop()


@contextmanager
def started(argv: list[str], mountpoint: Path, errlog: Path) -> Iterator[SimulateProcess]:
    """Start a ddfs command (stderr appended to ``errlog``); stop it by its handle on exit."""
    with open(errlog, "a+b") as err:  # O_APPEND: reading it back never moves the child's writes
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        handle = DdfsProcess(proc, err, os.path.realpath(mountpoint))
        try:
            yield handle
        finally:
            handle.stop()


def note(run: Run, m: SimulateProcess) -> None:
    """Remember the run's FUSE connection and the loop devices its ddfs announced."""
    conn = fuse_connection(run.mnt)
    if conn is not None and conn >= 0:
        run.conns.add(conn)
    run.loops.update(re.findall(r"attached as (/dev/loop\d+)", m.stderr()))


def watch(run: Run, m: SimulateProcess, seconds: float) -> bool:
    """Wait ``seconds`` (noting mounts and loop devices); False if the process ended."""
    deadline = time.monotonic() + seconds
    while True:
        note(run, m)
        if m.proc.poll() is not None:
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.02)


def wait_until(run: Run, m: SimulateProcess, cond: Callable[[], bool], timeout: float) -> bool:
    """Wait for ``cond`` (False on timeout or when the process ended first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        note(run, m)
        if cond():
            return True
        if m.proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def phase_now(mnt: Path) -> str | None:
    try:
        return str(status(mnt)["phase"])
    except (OSError, ValueError, KeyError):
        return None


def umount(path: Path) -> subprocess.CompletedProcess[str]:
    """``umount PATH``, or a lazy one if that fails (the caller checks the first result)."""
    res = subprocess.run(["umount", str(path)], capture_output=True, text=True, timeout=60)
    if res.returncode:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=60)
    return res


@contextmanager
def ro_mount(run: Run, dev: str) -> Iterator[Path | None]:
    """``mount -o ro DEV RUN/fs`` (the ext4 of p1); always unmounted on exit."""
    where = run.dir / "fs"
    where.mkdir(exist_ok=True)
    res = subprocess.run(
        ["mount", "-o", "ro", dev, str(where)], capture_output=True, text=True, timeout=60
    )
    run.check(
        "the ext4 of p1 mounts read-only from its loop device",
        res.returncode == 0,
        f"mount -o ro {dev}: {res.stderr}",
    )
    try:
        yield where if res.returncode == 0 else None
    finally:
        if is_mounted(where):
            umount(where)


def mounts_under(root: Path, fuse_only: bool, skip: tuple[Path, ...] = ()) -> list[str]:
    """Mounts (mount point and type) under ``root`` from /proc/self/mountinfo."""
    top = os.path.realpath(root) + "/"
    skips = {os.path.realpath(p) for p in skip}
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            point = fields[4].replace("\\040", " ")
            fstype = fields[fields.index("-") + 1]
            wanted = not fuse_only or fstype.startswith("fuse")
            if point.startswith(top) and point not in skips and wanted:
                found.append(f"{point} ({fstype})")
    return found


def run_loops(run: Run) -> list[str]:
    """Loop devices backed by a file of the run: a path under its directory, or (once the
    mount was detached) ``/image`` or ``/pN`` on one of its FUSE connections."""
    res = subprocess.run(
        ["losetup", "-J", "-l", "-O", "NAME,BACK-FILE,BACK-MAJ:MIN"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if res.returncode or not res.stdout.strip():
        return []
    top = os.path.realpath(run.dir) + "/"
    found = []
    for d in json.loads(res.stdout).get("loopdevices", []):
        back = d.get("back-file") or ""
        major, _, minor = (d.get("back-maj:min") or "").strip().partition(":")
        detached = re.fullmatch(r"/(image|p\d+)( \(deleted\))?", back) is not None
        ours_conn = major == "0" and minor.isdigit() and int(minor) in run.conns
        new = d["name"] in run.loops or d["name"] not in run.loops_before
        if back.startswith(top) or (detached and (ours_conn or new)):
            found.append(f"{d['name']} -> {back} (back-maj:min {d.get('back-maj:min')!r})")
    return found


def loop_names() -> list[str]:
    """The loop devices attached now (``losetup -J -l``)."""
    res = subprocess.run(["losetup", "-J", "-l"], capture_output=True, text=True, timeout=30)
    if res.returncode or not res.stdout.strip():
        return []
    return [d["name"] for d in json.loads(res.stdout).get("loopdevices", [])]


def detach(devices: list[str]) -> None:
    for entry in devices:
        dev = entry.split()[0]
        subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=30)
        backing = f"/sys/block/{os.path.basename(dev)}/loop/backing_file"
        deadline = time.monotonic() + 10
        while os.path.exists(backing) and time.monotonic() < deadline:
            time.sleep(0.02)


# ------------------------------------------------------------------ readers and the writer
class Readers:
    """Threads reading the mount while the fault hits it: random places of ``image`` and
    ``p1`` (each read must be the image's bytes, or EIO), and the files of a loop-mounted ext4
    (each must equal the file put into it). Errors other than EIO end a thread (the mount
    died)."""

    def __init__(self, run: Run, avoid: Range | None = None) -> None:
        self.run, self.avoid = run, avoid
        self.halt = threading.Event()
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.ok = self.eio = 0
        self.wrong: list[str] = []
        self.stopped = False

    def __enter__(self) -> Readers:
        files = [("image", 0)] + ([("p1", P1[0])] if self.run.disk.p1 else [])
        for i, (name, base) in enumerate(files):
            self._start(self._read_file, name, base, self.run.seed * 10 + i)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_tree(self, root: Path) -> None:
        self._start(self._read_tree, root, self.run.seed * 10 + 5)

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop(self) -> None:
        """Halt and join the threads (once); check they did not hang or read wrong data."""
        if self.stopped:
            return
        self.stopped = True
        self.halt.set()
        for t in self.threads:
            t.join(20)
        hung = sum(t.is_alive() for t in self.threads)
        self.run.check("no reader hangs on the mount", not hung, f"{hung} reader(s) stuck")
        self.run.check(
            "every read through the mount is the image's bytes or EIO",
            not self.wrong,
            "; ".join(self.wrong[:5]),
        )
        self.run.event("reads correct", self.ok)
        self.run.event("reads EIO", self.eio)

    def _count(self, ok: int = 0, eio: int = 0, wrong: str = "") -> None:
        with self.lock:
            self.ok += ok
            self.eio += eio
            if wrong:
                self.wrong.append(wrong)

    def _open(self, path: Path) -> int | None:
        while not self.halt.is_set():
            if is_mounted(self.run.mnt):
                try:
                    return os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    pass  # p1 is not there yet, or the dead mount was detached
                except OSError:
                    return None
            time.sleep(0.02)
        return None

    def _read_file(self, name: str, base: int, seed: int) -> None:
        rng = random.Random(seed)
        fd = self._open(self.run.mnt / name)
        if fd is None:
            return
        image = self.run.image
        try:
            size = os.fstat(fd).st_size
            while not self.halt.is_set():
                pos = rng.randrange(0, size // SECTOR) * SECTOR
                n = rng.choice((512, 4096, 65536))
                at = base + pos
                if self.avoid and at < self.avoid[1] and self.avoid[0] < at + n:
                    continue
                try:
                    data = os.pread(fd, n, pos)
                except OSError as exc:
                    if exc.errno != errno.EIO:
                        return  # the server was killed: ENOTCONN / ECONNABORTED
                    self._count(eio=1)
                    time.sleep(0.01)
                    continue
                if data == image[at : at + len(data)]:
                    self._count(ok=1)
                else:
                    self._count(wrong=f"{name} at {pos:#x}+{n}: wrong bytes")
                time.sleep(rng.uniform(0, 0.01))
        except OSError:
            return
        finally:
            with suppress(OSError):  # (ENOTCONN on a dead mount)
                os.close(fd)

    def _read_tree(self, root: Path, seed: int) -> None:
        rng = random.Random(seed)
        tree = self.run.disk.tree
        assert tree is not None
        files = sorted(p.relative_to(tree) for p in tree.rglob("*") if p.is_file())
        while not self.halt.is_set():
            rel = rng.choice(files)
            try:
                data = (root / rel).read_bytes()
            except OSError as exc:
                if exc.errno != errno.EIO:
                    self._count(wrong=f"ext4 {rel}: {exc}")
                    return
                self._count(eio=1)
                time.sleep(0.01)
                continue
            if data == (tree / rel).read_bytes():
                self._count(ok=1)
            else:
                self._count(wrong=f"ext4 file {rel}: wrong bytes")


def sector_bytes(pos: int, gen: int) -> bytes:
    """The 512 bytes the writer puts at image position ``pos`` in its write number ``gen``."""
    line = f"ddfs fault campaign: sector {pos:#x}, write {gen}\n".encode()
    return (line * (SECTOR // len(line) + 1))[:SECTOR]


class Writer:
    """Writes numbered sectors into ``MNT/image`` of an overlay mount (whole sectors, in
    ``band``), with an fsync after some writes, until halted or the mount dies. ``gens`` holds
    every write number each sector was given; ``durable`` the writes an fsync returned for."""

    def __init__(self, run: Run, band: Range) -> None:
        self.run, self.band = run, band
        self.halt = threading.Event()
        self.gens: dict[int, set[int]] = {}
        self.durable: list[Range] = []  # (pos, sectors)
        self.writes = self.fsyncs = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Writer:
        self.run.writer = self
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.halt.set()
        self.thread.join(20)
        self.run.check("the overlay writer does not hang", not self.thread.is_alive())
        self.run.event("overlay writes", self.writes)
        self.run.event("overlay fsyncs returned", self.fsyncs)

    def _open(self) -> int | None:
        while not self.halt.is_set():
            if is_mounted(self.run.mnt):
                try:
                    return os.open(self.run.mnt / "image", os.O_RDWR)
                except FileNotFoundError:
                    pass
                except OSError:
                    return None
            time.sleep(0.02)
        return None

    def _loop(self) -> None:
        rng = random.Random(self.run.seed * 10 + 7)
        fd = self._open()
        if fd is None:
            return
        pending: list[Range] = []
        lo, hi = self.band
        try:
            while not self.halt.is_set():
                gen = self.writes + 1
                nsec = rng.choice((1, 2, 8, 64))
                pos = lo + rng.randrange(0, (hi - lo) // SECTOR - nsec) * SECTOR
                for p in range(pos, pos + nsec * SECTOR, SECTOR):
                    self.gens.setdefault(p, set()).add(gen)
                data = b"".join(sector_bytes(p, gen) for p in range(pos, pos + nsec * SECTOR, 512))
                os.pwrite(fd, data, pos)
                self.writes += 1
                pending.append((pos, nsec))
                if rng.random() < 0.3:
                    os.fsync(fd)
                    self.durable += pending
                    pending = []
                    self.fsyncs += 1
                time.sleep(rng.uniform(0, 0.03))
        except OSError:
            return  # the mount died under the writer
        finally:
            with suppress(OSError):
                os.close(fd)


# ------------------------------------------------------------------ the faults
def mount_argv(run: Run, *opts: str) -> list[str]:
    argv = ["-q", f"--mapfile-interval={run.interval}", *opts]
    return ddfs_argv("mount", *argv, run.dev, str(run.out), str(run.mp), str(run.mnt))


def rescue_argv(run: Run) -> list[str]:
    argv = ["-q", f"--mapfile-interval={run.interval}"]
    return ddfs_argv("rescue", *argv, run.dev, str(run.out), str(run.mp))


def live_mount_on(mnt: Path) -> bool:
    """A ddfs mount that answers is on ``mnt``. (The dead one a killed mount leaves answers
    ``readdir`` with ENOTCONN at once, its server being gone; a ``stat`` may still be answered
    from the kernel's caches.)"""
    if not is_mounted(mnt):
        return False
    try:
        return "status.json" in os.listdir(mnt)
    except OSError:
        return False


def wait_mounted(run: Run, m: SimulateProcess, timeout: float = 30) -> bool:
    return wait_until(run, m, lambda: live_mount_on(run.mnt), timeout)


def maybe_probe(run: Run, m: SimulateProcess, chance: float) -> None:
    """Now and then: a second ``ddfs rescue``, or ``ddfs mount`` on another mount point, on the
    same mapfile while the mount runs; it must be refused promptly (exit status 1). One that
    goes on is stopped by its handle (unmounted first)."""
    which = run.rng.choice(["rescue", "mount"])
    if run.rng.random() >= chance or not wait_mounted(run, m):
        return
    run.event(f"second ddfs {which} on the same mapfile tried")
    mnt2 = run.dir / "mnt2"
    mnt2.mkdir(exist_ok=True)
    files = (run.dev, str(run.out), str(run.mp))
    argv = ddfs_argv(which, "-q", *files, *([str(mnt2)] if which == "mount" else []))
    with started(argv, mnt2, run.dir / "second.err") as second:
        rc = second.wait(5)
        text = second.stderr()
    refused = rc == 1 and "Traceback" not in text
    reason = "in use" if "in use" in text else "other reason"
    run.event(f"second ddfs {which}: {'refused (' + reason + ')' if refused else 'accepted'}")
    run.check(
        "a second ddfs on the same mapfile is refused",
        refused,
        f"second ddfs {which}: rc={rc} (None: still running after 5 s): {text[-600:]}",
    )


def kill_at_random(run: Run, m: SimulateProcess) -> None:
    """``kill -9`` at a random moment: from the start, or once the mount is up."""
    moment = run.rng.choice(["from-start", "mounted", "mounted"])
    early, late = run.rng.uniform(0.05, 3.0), run.rng.uniform(0.0, 2.5)
    if moment == "from-start":
        alive = watch(run, m, early)
    else:
        alive = wait_mounted(run, m) and watch(run, m, late)
    run.check("ddfs mount runs until it is killed", alive, f"rc={m.proc.poll()}: {m.stderr()}")
    kill_mount(run, m, moment)


def kill_mount(run: Run, m: SimulateProcess, moment: str) -> None:
    """SIGKILL by the handle; what the process leaves (a dead mount, loop devices) stays for
    the next run, as after a real crash."""
    note(run, m)
    kill9(m.proc)
    left = "dead mount left" if is_mounted(run.mnt) else "not mounted"
    run.event(f"kill -9 ({moment}, {left})")


def fault_kill_mount(run: Run, stack: ExitStack) -> None:
    with (
        started(mount_argv(run), run.mnt, run.dir / "fault.err") as m,
        Readers(run),
    ):
        maybe_probe(run, m, 0.25)
        kill_at_random(run, m)


def fault_kill_loop(run: Run, stack: ExitStack) -> None:
    run.opts = ["--loop"]
    early = run.rng.random() < 0.25
    d_early, d_late = run.rng.uniform(0.05, 3.0), run.rng.uniform(0.0, 2.0)
    with (
        started(mount_argv(run, *run.opts), run.mnt, run.dir / "fault.err") as m,
        Readers(run) as readers,
    ):
        maybe_probe(run, m, 0.25)
        if early:
            watch(run, m, d_early)
            kill_mount(run, m, "from-start")
            return
        found = wait_until(run, m, lambda: re.search(r"p1 attached as", m.stderr()) is not None, 60)
        match = re.search(r"p1 attached as (/dev/loop\d+)", m.stderr())
        if not run.check(
            "p1 is attached as a loop device", found and match is not None, m.stderr()[-800:]
        ):
            kill_mount(run, m, "no loop device")
            return
        assert match is not None
        with ro_mount(run, match.group(1)) as fs:
            if fs is not None:
                readers.add_tree(fs)
                run.event("ext4 of p1 mounted from the loop device at the kill")
            watch(run, m, d_late)
            kill_mount(run, m, "loop mounted")
            readers.stop()  # (before the ext4 is unmounted)


def fault_kill_overlay(run: Run, stack: ExitStack) -> None:
    run.overlay = run.dir / "overlay.img"
    run.opts = ["--overlay", str(run.overlay)]
    size = run.disk.spec.size
    lo = run.rng.randrange(0, (size - MiB) // SECTOR) * SECTOR
    band = (lo, lo + MiB)
    with (
        started(mount_argv(run, *run.opts), run.mnt, run.dir / "fault.err") as m,
        Readers(run, avoid=band),
        Writer(run, band),
    ):
        maybe_probe(run, m, 0.25)
        kill_at_random(run, m)


def mount_fault(run: Run, trigger: Callable[[SimulateProcess], None] | None) -> tuple[int, str]:
    """``ddfs mount`` with readers until the engine stops (or its schedule is over) after a
    fault, then ``umount``; returns its exit status and stderr."""
    with (
        started(mount_argv(run), run.mnt, run.dir / "fault.err") as m,
        Readers(run) as readers,
    ):
        if trigger is not None:
            trigger(m)
        if wait_mounted(run, m):
            over = wait_until(run, m, lambda: phase_now(run.mnt) in ("stopped", "finished"), 90)
            run.check("the mount's engine stops after the fault", over, m.stderr()[-800:])
            readers.stop()
            res = umount(run.mnt)
            run.check("umount ends the mount after the fault", res.returncode == 0, res.stderr)
        rc = m.wait(60)
        err = m.stderr()
    return (rc if rc is not None else -999), err


def fault_full_target(run: Run, stack: ExitStack) -> None:
    size = run.disk.spec.size
    room = run.rng.randrange(2 * MiB, size - 2 * MiB, 64 * 1024)
    map_on_target = run.rng.random() < 0.5
    variant = run.rng.choice(["rescue", "mount"])
    run.event(f"full target under ddfs {variant} (map {'on' if map_on_target else 'off'} it)")
    target = stack.enter_context(tmpfs(run.dir / "target", f"{room // 1024}k"))
    run.out = target / "out"
    if map_on_target:
        run.mp = target / "map"
    if variant == "rescue":
        res = subprocess.run(rescue_argv(run), capture_output=True, text=True, timeout=300)
        rc, err = res.returncode, res.stderr
    else:
        rc, err = mount_fault(run, None)
    # the output's write error; or, with the map on the full tmpfs too, the map's own save
    # error when even an in-place rewrite has no room (the map must still be whole: checked)
    messages = [f"{run.out}: Write error: No space left on device"]
    if map_on_target:
        messages.append(f"Error writing mapfile '{run.mp}': No space left on device")
    said = [m for m in messages if m in err]
    label = "map save error" if len(said) > 1 or "mapfile" in "".join(said) else "write error"
    run.event(f"full target message: {label if said else 'other'}")
    ok = rc == 1 and bool(said) and "Traceback" not in err
    run.check("a full target ends the run with exit 1 and its message", ok, f"rc={rc}: {err}")
    resize_tmpfs(target, f"{3 * size // 1024}k")


def fault_source_vanish(run: Run, stack: ExitStack) -> None:
    how = run.rng.choice(["server-killed", "connection-aborted"])
    variant = run.rng.choice(["rescue", "mount"])
    delay = run.rng.uniform(0.2, 3.0)
    run.event(f"source vanished ({how}) under ddfs {variant}")

    def trigger(m: SimulateProcess) -> None:
        watch(run, m, delay)
        assert run.sim is not None
        vanish(run.sim, how)

    if variant == "rescue":
        with started(rescue_argv(run), run.mnt, run.dir / "fault.err") as p:
            trigger(p)
            rc = p.wait(120)
            err = p.stderr()
    else:
        rc, err = mount_fault(run, trigger)
    finished = complete(run.mp)
    last = err.strip().splitlines()[-1] if err.strip() else ""
    run.event(f"vanish message: {last or '(none)'} (exit {rc})")
    ok = (rc == 1 or (rc == 0 and finished)) and "Traceback" not in err
    run.check("a vanished source ends the run with exit 1 and a message", ok, f"rc={rc}: {err}")
    restart_sim(run, stack)


FAULTS: dict[str, Callable[[Run, ExitStack], None]] = {
    "kill-mount": fault_kill_mount,
    "kill-loop": fault_kill_loop,
    "kill-overlay": fault_kill_overlay,
    "full-target": fault_full_target,
    "source-vanish": fault_source_vanish,
}


def restart_sim(run: Run, stack: ExitStack) -> None:
    """Serve the disk again on the same mount point (the old server is gone)."""
    sim = stack.enter_context(
        simulate_process(
            run.disk.image, run.sim_dir, run.disk.badmap, rate=run.rate, seek_ms=1, error_ms=2
        )
    )
    run.sim, run.dev = sim, sim.disk


# ------------------------------------------------------------------ checks after a fault
def check_parses(run: Run, path: Path, label: str) -> None:
    res = ddrescuelog_accepts(path)
    run.check(
        f"{label} accepted by ddrescuelog -t",
        res.returncode == 0,
        f"{path}: {res.stderr}\n{path.read_text(errors='replace')[:600]}",
    )
    try:
        parse_mapfile(str(path))
        problem = ""
    except (MapfileError, DdfsError) as exc:
        problem = f"{path}: {exc}"
    run.check(f"{label} parsed by parse_mapfile", not problem, problem)


def check_claims(run: Run, path: Path, label: str) -> None:
    try:
        check_map_claims(path, run.out, run.image, run.disk.truth)
        problem = ""
    except (AssertionError, OSError, ValueError, IndexError) as exc:  # (a map that won't parse)
        problem = f"{exc!r}\n{path.read_text(errors='replace')[:600]}"
    run.check(f"{label} claims only what the output holds", not problem, problem)


def check_overlay(run: Run, writer: Writer) -> None:
    """The overlay map parses, claims only sectors its data file holds (a write the writer
    made there), and claims every write an fsync returned for."""
    assert run.overlay is not None
    mpath = Path(f"{run.overlay}.map")
    if not mpath.exists():
        run.event("overlay map not made yet at the kill")
        return
    check_parses(run, mpath, "overlay map")
    try:
        bmap = parse_mapfile(str(mpath)).bmap
    except (MapfileError, DdfsError):
        return
    claimed = [(s, e) for s, e, st in bmap.blocks_from(0) if st == "+"]
    wrong: list[str] = []
    with open(run.overlay, "rb") as fh:
        for s, e in claimed:
            for p in range(s, e, SECTOR):
                got = os.pread(fh.fileno(), SECTOR, p)
                if not any(got == sector_bytes(p, g) for g in writer.gens.get(p, ())):
                    wrong.append(f"{p:#x} ({'zeros' if not got.strip(bytes(1)) else 'other'})")
    run.check(
        "the overlay map claims only sectors its data file holds",
        not wrong,
        f"{len(wrong)} sector(s): {wrong[:8]}",
    )
    held = merge(claimed)
    lost = [
        f"{p:#x}+{n}"
        for p, n in writer.durable
        if not any(s <= p and p + n * SECTOR <= e for s, e in held)
    ]
    run.check("every fsynced overlay write is in the overlay map", not lost, f"{lost[:8]}")
    run.event("overlay sectors claimed", sum(e - s for s, e in claimed) // SECTOR)


def keep_maps(run: Run) -> None:
    """Copies of the maps as the fault left them (in RUN/after-fault, for a failure's look)."""
    keep = run.dir / "after-fault"
    keep.mkdir(exist_ok=True)
    paths = [run.mp, Path(f"{run.mp}.bak")]
    if run.overlay is not None:
        paths.append(Path(f"{run.overlay}.map"))
    for path in paths:
        if path.exists():
            shutil.copy(path, keep / path.name)


def check_after_fault(run: Run) -> None:
    keep_maps(run)
    if not run.mp.exists():
        run.event("no map yet when the fault hit")
    for path, label in ((run.mp, "map"), (Path(f"{run.mp}.bak"), "MAP.bak")):
        if path.exists():
            check_parses(run, path, label)
            check_claims(run, path, label)
    if run.writer is not None:
        check_overlay(run, run.writer)


# ------------------------------------------------------------------ the next run, the end
def rescue_once(run: Run, label: str) -> bool:
    res = subprocess.run(rescue_argv(run), capture_output=True, text=True, timeout=300)
    ok = res.returncode == 0 and "Traceback" not in res.stderr
    return run.check(f"{label} (ddfs rescue) exits 0", ok, f"rc={res.returncode}: {res.stderr}")


def mount_once(run: Run) -> None:
    """The faulted ``ddfs mount`` again, until its schedule is over; then stopped as a user
    would: ``umount``, or SIGTERM with ``--loop`` (its loop devices keep the mount busy)."""
    with started(mount_argv(run, *run.opts), run.mnt, run.dir / "next.err") as m:
        up = wait_mounted(run, m)
        if not run.check("the next run (ddfs mount) mounts", up, m.stderr()[-800:]):
            return
        done = wait_until(run, m, lambda: phase_now(run.mnt) == "finished", 180)
        run.check("the next run (ddfs mount) finishes its schedule", done, m.stderr()[-800:])
        if "--loop" in run.opts:
            want = len(run.disk.p1 or ()) // 2 + 1  # image, and p1 on the ext4 disks
            wait_until(run, m, lambda: m.stderr().count("attached as") >= want, 30)
            m.proc.send_signal(signal.SIGTERM)
            expect = -signal.SIGTERM
        else:
            res = umount(run.mnt)
            run.check("umount ends the next run", res.returncode == 0, res.stderr)
            expect = 0
        rc = m.wait(60)
        err = m.stderr()
        ok = rc == expect and "Traceback" not in err
        run.check("the next run (ddfs mount) stops cleanly", ok, f"rc={rc}: {err}")


def next_run(run: Run) -> None:
    """Start and stop the next run, then: no ddfs mount, loop device or process of the run
    is left (whatever is found is recorded, then cleared so the campaign goes on)."""
    # after a killed mount, the user runs the same command again (it finds the dead mount)
    how = "mount" if run.kind.startswith("kill") else run.rng.choice(["rescue", "mount"])
    run.event(f"next run: ddfs {how}")
    if how == "mount":
        mount_once(run)
    else:
        rescue_once(run, "the next run")
    after = f"after the next run (ddfs {how})"
    logs = f"; fault stderr: {err_tail(run, 'fault.err')}; next stderr: {err_tail(run, 'next.err')}"
    mounts = mounts_under(run.dir, fuse_only=True, skip=(run.sim_dir,))
    run.check(f"no ddfs mount is left {after}", not mounts, f"{mounts}{logs}")
    loops = run_loops(run)
    run.check(f"no loop device is left {after}", not loops, f"left: {loops}{logs}")
    procs = leftover_processes(str(run.mp)) + leftover_processes(str(run.mnt))
    run.check(f"no process is left {after}", not procs, f"{procs}{logs}")
    for point in mounts:
        abort_fuse(point.rsplit(" (", 1)[0])
    detach(loops)


def err_tail(run: Run, name: str, size: int = 400) -> str:
    """The end of a process's stderr kept in the run's directory (for failure details)."""
    try:
        text = (run.dir / name).read_text(errors="replace").strip()
    except OSError:
        return "(none)"
    return repr(text[-size:]) if text else "(empty)"


def same_bytes(a: Path, b: Path, ranges: list[Range]) -> str:
    """'' if ``a`` and ``b`` hold the same bytes over ``ranges``, else where they differ."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for s, e in ranges:
            for pos in range(s, e, MiB):
                n = min(MiB, e - pos)
                if os.pread(fa.fileno(), n, pos) != os.pread(fb.fileno(), n, pos):
                    return f"differ in [{pos:#x}, {pos + n:#x})"
    return ""


def complete(mapfile: Path) -> bool:
    """The map says the rescue is over: status ``+``, nothing left to try."""
    try:
        return phase_of(mapfile) == "+" and not ranges_of(mapfile, "?*/")
    except (OSError, ValueError, IndexError):
        return False


def complete_and_compare(run: Run) -> None:
    """Resume to the end (a run resumed in trimming may leave ``/``, as ddrescue's does), then
    compare with the clean run: the same map, the same bytes in every finished area."""
    for _ in range(3):
        if complete(run.mp):
            break
        if not rescue_once(run, "resuming to the end"):
            return
    final, clean = map_lines(run.mp), map_lines(run.disk.clean_map)
    same = final[1:] == clean[1:] and phase_of(run.mp) == "+"
    run.check(
        "the final map equals the clean run's",
        same,
        "final:\n" + "\n".join(final[:12]) + "\nclean:\n" + "\n".join(clean[:12]),
    )
    where = same_bytes(run.out, run.disk.clean_out, ranges_of(run.disk.clean_map, "+"))
    run.check("the final image equals the clean run's in every finished area", not where, where)


# ------------------------------------------------------------------ one run, the campaign
def make_run(tally: Tally, disks: Disks, base: Path, index: int, seed: int) -> Run:
    rng = random.Random(seed)
    kind = KINDS[seed % len(KINDS)]  # (the runs are spread evenly over the faults)
    choices = [i for i, d in enumerate(DISKS) if d.ext4 or kind != "kill-loop"]
    disk = disks.get(rng.choice(choices))
    rate = rng.choice(["6Mi", "8Mi", "12Mi"])
    interval = rng.choice(["0", "1", "1,5"])  # 1,5: sync saves rotate MAP.bak
    where = base / f"{index:03d}-seed{seed}"
    where.mkdir(parents=True)
    run = Run(seed, rng, kind, disk, where, tally, disk.image.read_bytes(), rate, interval)
    run.out, run.mp = where / "out", where / "map"
    run.mnt, run.sim_dir = where / "mnt", where / "sim"
    run.mnt.mkdir()
    run.sim_dir.mkdir()
    run.loops_before = set(loop_names())
    return run


def safety_net(run: Run) -> None:
    """Whatever a failed run left: loop devices detached, mounts aborted or unmounted."""
    detach(run_loops(run))
    for entry in mounts_under(run.dir, fuse_only=False, skip=(run.sim_dir,)):
        point, _, fstype = entry.rpartition(" (")
        if fstype.startswith("fuse"):
            abort_fuse(point)
        else:
            umount(Path(point))


def campaign_run(tally: Tally, disks: Disks, base: Path, index: int, seed: int) -> None:
    start = time.monotonic()
    run = make_run(tally, disks, base, index, seed)
    tally.kinds[run.kind] += 1
    try:
        with ExitStack() as stack:
            stack.callback(safety_net, run)
            restart_sim(run, stack)
            FAULTS[run.kind](run, stack)
            check_after_fault(run)
            next_run(run)
            complete_and_compare(run)
    except Exception:
        run.check("the run ends without a harness error", False, traceback.format_exc(limit=6))
    left = mounts_under(run.dir, fuse_only=False) + run_loops(run)
    left += leftover_processes(os.path.realpath(run.dir))
    run.check("cleanup: nothing of the run is left", not left, f"{left}")
    tally.seconds.append(time.monotonic() - start)
    kept = len({f.seed for f in tally.failures})
    if not left and (not run.failed or kept > KEEP_FAILED):
        shutil.rmtree(run.dir, ignore_errors=True)


def report(tally: Tally, total: float) -> str:
    lines = [
        f"fault campaign: {sum(tally.kinds.values())} runs in {total:.0f} s"
        f" (per run: mean {sum(tally.seconds) / max(1, len(tally.seconds)):.1f} s,"
        f" max {max(tally.seconds, default=0):.1f} s)",
        "  runs per fault: " + ", ".join(f"{k} {tally.kinds[k]}" for k in KINDS),
        f"  checks passed: {sum(tally.passed.values())}, failed: {len(tally.failures)}",
    ]
    lines += [f"    {n}: {c} passed" for n, c in sorted(tally.passed.items())]
    lines += ["  events:"] + [f"    {n}: {c}" for n, c in sorted(tally.events.items())]
    return "\n".join(lines)


def distinct_failures(tally: Tally) -> str:
    groups: dict[tuple[str, str], list[Failure]] = {}
    for f in tally.failures:
        groups.setdefault((f.check, f.kind), []).append(f)
    out = []
    for (check, kind), fails in sorted(groups.items()):
        seeds = ", ".join(str(f.seed) for f in fails[:12])
        out.append(
            f"- {check} [{kind}] x{len(fails)}, seeds {seeds}"
            f" (replay: DDFS_CAMPAIGN_SEED={fails[0].seed})\n    {fails[0].detail[:900]}"
        )
    return "\n".join(out)


@pytest.mark.timeout(4 * 3600)
def test_fault_campaign(tmp_path: Path) -> None:
    one = os.environ.get("DDFS_CAMPAIGN_SEED")
    seeds = [int(s) for s in one.split(",")] if one else [FIRST_SEED + i for i in range(RUNS)]
    tally = Tally()
    disks = Disks(tmp_path / "disks")
    start = time.monotonic()
    try:
        for index, seed in enumerate(seeds):
            faulthandler.dump_traceback_later(RUN_WATCHDOG)
            campaign_run(tally, disks, tmp_path / "runs", index, seed)
            if (index + 1) % 10 == 0:
                print(
                    f"\n[{index + 1}/{len(seeds)} runs, {time.monotonic() - start:.0f} s,"
                    f" {len(tally.failures)} failed checks]",
                    flush=True,
                )
    finally:
        faulthandler.cancel_dump_traceback_later()
    print("\n" + report(tally, time.monotonic() - start))
    left = mounts_under(tmp_path, fuse_only=False)
    assert not left, f"mounts left by the campaign: {left}"
    assert not tally.failures, f"{len(tally.failures)} failed checks:\n{distinct_failures(tally)}"
