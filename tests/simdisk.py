"""Test helpers: a ``ddfs simulate`` failing disk in a subprocess, and a read-only loop device.

Usage::

    with simulated_disk(image, mnt, bad=testmap, rate="0", weak=["1Mi:4Ki:2"]) as disk:
        data = os.pread(os.open(disk, os.O_RDONLY), 65536, 0)
        stats = read_stats(disk)
        with loop_device(disk) as dev:        # /dev/loopN, detached on exit
            ...

Every helper cleans up in ``finally``, also when the test fails: the loop device is detached,
the mount is unmounted (``fusermount3 -u``, then ``-u -z``), and the process is waited for,
terminated and killed **by its handle**. As a last resort a mount that is still there is
aborted through ``/sys/fs/fuse/connections/N/abort``. Mount state is read from
``/proc/self/mountinfo``, never by ``stat()`` (which would hang on a dead FUSE mount).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

StrPath = str | os.PathLike[str]
MOUNT_TIMEOUT = 20.0


def ddfs_argv(*args: str) -> list[str]:
    """The ``ddfs`` script next to ``sys.executable`` (or ``python -c`` if there is none)."""
    script = Path(sys.executable).with_name("ddfs")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from ddfs.commands.cli import main; main()", *args]


def have_fuse() -> bool:
    return os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None


def have_loop() -> bool:
    return os.geteuid() == 0 and shutil.which("losetup") is not None


# ------------------------------------------------------------------ mount table
def _unescape(field: str) -> str:
    """Undo the octal escapes (``\\040`` for a space) of /proc/self/mountinfo."""
    out = field
    for code in ("\\040", "\\011", "\\012", "\\134"):
        out = out.replace(code, chr(int(code[1:], 8)))
    return out


def fuse_connection(mountpoint: StrPath) -> int | None:
    """The FUSE connection number (the minor of ``0:N``) of a mount, or None if not mounted."""
    target = os.path.realpath(mountpoint)
    found = None
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            if _unescape(fields[4]) == target:
                major, _, minor = fields[2].partition(":")
                found = int(minor) if major == "0" else -1
    return found  # the last entry is the top of the stack


def is_mounted(mountpoint: StrPath) -> bool:
    """True if something is mounted on ``mountpoint`` (without touching the mount)."""
    return fuse_connection(mountpoint) is not None


def abort_fuse(mountpoint: StrPath) -> None:
    """Abort a hung FUSE connection and detach the mount (developer's last resort)."""
    conn = fuse_connection(mountpoint)
    if conn is not None and conn >= 0:
        path = f"/sys/fs/fuse/connections/{conn}/abort"
        if not os.path.exists(path) and os.geteuid() == 0:
            subprocess.run(
                ["mount", "-t", "fusectl", "none", "/sys/fs/fuse/connections"],
                capture_output=True,
                check=False,
            )
        with suppress(OSError), open(path, "w") as fh:
            fh.write("1")
    _fusermount(mountpoint, lazy=True)


def _fusermount(mountpoint: StrPath, lazy: bool = False) -> bool:
    args = ["fusermount3", "-u", "-q"] + (["-z"] if lazy else []) + [os.fspath(mountpoint)]
    try:
        return subprocess.run(args, capture_output=True, timeout=10, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


# ------------------------------------------------------------------ the simulated disk
def simulate_argv(
    image: StrPath, mountpoint: StrPath, bad: StrPath | None = None, **options: Any
) -> list[str]:
    """The ``ddfs simulate`` command line; options: rate, seek_ms, error_ms, weak, hang, ...

    ``weak`` and ``hang`` take a string or an iterable of strings; ``True`` gives a flag.
    """
    argv = ddfs_argv("simulate", os.fspath(image), os.fspath(mountpoint))
    if bad is not None:
        argv += ["--bad", os.fspath(bad)]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif isinstance(value, str) or not isinstance(value, Iterable):
            argv += [flag, str(value)]
        else:
            for item in value:
                argv += [flag, str(item)]
    return argv


class SimulateProcess:
    """A running ``ddfs simulate`` with its handle and its captured stderr."""

    def __init__(self, proc: subprocess.Popen[bytes], stderr: IO[bytes], mountpoint: str):
        self.proc = proc
        self.mountpoint = mountpoint
        self.disk = os.path.join(mountpoint, "disk")
        self._stderr = stderr

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def wait_mounted(self, timeout: float = MOUNT_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not is_mounted(self.mountpoint):
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"ddfs simulate exited with {self.proc.returncode}: {self.stderr()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"ddfs simulate did not mount in {timeout}s: {self.stderr()}")
            time.sleep(0.01)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """Unmount and end the process, whatever state it is in (idempotent)."""
        proc = self.proc
        try:
            if is_mounted(self.mountpoint) and proc.poll() is None:
                if _fusermount(self.mountpoint):
                    self.wait(10)  # an external unmount ends the process by itself
                else:  # busy (open files, a hung read): detach, then let SIGTERM finish it
                    _fusermount(self.mountpoint, lazy=True)
            if proc.poll() is None:
                proc.terminate()
                if self.wait(10) is None:
                    proc.kill()
                    proc.wait(10)
        finally:
            if is_mounted(self.mountpoint):
                abort_fuse(self.mountpoint)


@contextmanager
def simulate_process(
    image: StrPath,
    mountpoint: StrPath,
    bad: StrPath | None = None,
    *,
    wait: bool = True,
    **options: Any,
) -> Iterator[SimulateProcess]:
    """Start ``ddfs simulate`` (foreground), wait for the mount, yield the process; clean up."""
    mnt = os.path.realpath(mountpoint)
    argv = simulate_argv(image, mnt, bad, **options)
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        sim = SimulateProcess(proc, err, mnt)
        try:
            if wait:
                sim.wait_mounted()
            yield sim
        finally:
            sim.stop()


@contextmanager
def simulated_disk(
    image: StrPath, mountpoint: StrPath, bad: StrPath | None = None, **options: Any
) -> Iterator[str]:
    """Serve ``image`` as a failing disk; yield the path of ``MOUNTPOINT/disk``."""
    with simulate_process(image, mountpoint, bad, **options) as sim:
        yield sim.disk


def read_stats(disk: StrPath) -> dict[str, Any]:
    """The ``stats.json`` next to a simulated ``disk``."""
    with open(os.path.join(os.path.dirname(os.fspath(disk)), "stats.json"), "rb") as fh:
        return json.loads(fh.read())


# ------------------------------------------------------------------ loop devices
@contextmanager
def loop_device(
    path: StrPath, read_only: bool = True, offset: int = 0, size: int = 0
) -> Iterator[str]:
    """Attach ``path`` (from ``offset``, ``size`` bytes if given) to a free loop device
    (``losetup -r -f --show``); detach on exit."""
    argv = ["losetup", "-f", "--show", os.fspath(path)]
    if read_only:
        argv.insert(1, "-r")
    if offset:
        argv[1:1] = ["-o", str(offset)]
    if size:
        argv[1:1] = ["--sizelimit", str(size)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30)
    dev = out.stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True, check=False, timeout=30)
        # the detach may be deferred while the device is open; wait so the file is released
        backing = f"/sys/block/{os.path.basename(dev)}/loop/backing_file"
        deadline = time.monotonic() + 5
        while os.path.exists(backing) and time.monotonic() < deadline:
            time.sleep(0.01)


def send_signal(sim: SimulateProcess, signum: int = signal.SIGTERM) -> None:
    """Signal the simulate process by its handle."""
    sim.proc.send_signal(signum)
