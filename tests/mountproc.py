"""Test helper: ``ddfs mount`` in a subprocess, waited for and always cleaned up.

It reuses the FUSE process handling of :mod:`tests.simdisk` (mount detection from
``/proc/self/mountinfo``, unmount, then terminate/kill by handle, abort as a last resort).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.simdisk import SimulateProcess, StrPath, ddfs_argv


@contextmanager
def live_mount(
    infile: StrPath, outfile: StrPath, mapfile: StrPath, mountpoint: StrPath, *options: str
) -> Iterator[SimulateProcess]:
    """Run ``ddfs mount OPTIONS INFILE OUTFILE MAPFILE MOUNTPOINT``; yield once mounted."""
    mnt = os.path.realpath(mountpoint)
    argv = ddfs_argv("mount", *options, *map(os.fspath, (infile, outfile, mapfile)), mnt)
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        mount = SimulateProcess(proc, err, mnt)
        try:
            mount.wait_mounted()
            yield mount
        finally:
            mount.stop()


def status(mountpoint: StrPath) -> dict[str, Any]:
    with open(os.path.join(mountpoint, "status.json"), "rb") as fh:
        return json.loads(fh.read())


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)
