"""Setting up ``ddfs simulate``: its options parsed into the model, and ``--background``.

:func:`build_disk` turns the command-line options into a :class:`FailingDisk` (the pure model
of ``disk.py``), rejecting bad values with a :class:`DdfsError`. :func:`run_background` is
``--background``: it starts the command again as a ``--foreground`` child in a new session
(:func:`child_argv` rebuilds its command line), waits until that child serves and exits. The
pyfuse3 adapter that serves the model, and ``main``, are in ``fusefs.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from ddfs.simulate.disk import FailingDisk, parse_hang, parse_weak
from engine.errors import DdfsError
from engine.map.mapfile import parse_mapfile
from engine.numbers import parse_number

SERVING = "ddfs simulate: serving {image} at {disk}"


def build_disk(
    size: int,
    bad: str | None,
    rate: str,
    seek_ms: float,
    error_ms: float,
    weak: Sequence[str],
    hang: Sequence[str],
) -> FailingDisk:
    """Parse the options into a :class:`FailingDisk`.

    Raises:
        DdfsError: a bad option value or an unreadable test map (exit status in it).
    """
    bmap = parse_mapfile(bad).bmap if bad is not None else None
    for value, option in ((seek_ms, "--seek-ms"), (error_ms, "--error-ms")):
        if not value >= 0:  # also rejects NaN
            raise DdfsError(f"Value out of limits [0,inf) in option '{option}'.")
    return FailingDisk(
        size=size,
        bad=bmap,
        rate=parse_number(rate, "--rate", minimum=0),
        seek_s=seek_ms / 1000,
        error_s=error_ms / 1000,
        weak=[parse_weak(w) for w in weak],
        hang=[parse_hang(h) for h in hang],
    )


def child_argv(kw: dict[str, Any]) -> list[str]:
    argv = [sys.executable, "-c", "from ddfs.commands.cli import main; main()", "simulate"]
    argv += [os.path.abspath(kw["image"]), os.path.abspath(kw["mountpoint"]), "--foreground"]
    if kw["bad"] is not None:
        argv += ["--bad", os.path.abspath(kw["bad"])]
    argv += ["--rate", kw["rate"], "--seek-ms", repr(kw["seek_ms"])]
    argv += ["--error-ms", repr(kw["error_ms"])]
    for w in kw["weak"]:
        argv += ["--weak", w]
    for h in kw["hang"]:
        argv += ["--hang", h]
    if kw.get("log_reads"):
        argv += ["--log-reads", os.path.abspath(kw["log_reads"])]
    return argv


def run_background(kw: dict[str, Any], deadline_s: float = 30.0) -> int:
    """Start a ``--foreground`` child in a new session; return once it serves (or failed)."""
    fd, logname = tempfile.mkstemp(prefix=f"ddfs-simulate-{os.getpid()}-", suffix=".log")
    with os.fdopen(fd, "w+b") as logfile:
        child = subprocess.Popen(
            child_argv(kw),
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=logfile,
            start_new_session=True,
            cwd="/",
        )
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            logfile.seek(0)
            text = logfile.read().decode(errors="replace")
            if "ddfs simulate: serving" in text:
                line = SERVING.format(
                    image=kw["image"], disk=os.path.join(kw["mountpoint"], "disk")
                )
                sys.stderr.write(f"{line} (pid {child.pid}, log {logname})\n")
                return 0
            code = child.poll()
            if code is not None:
                sys.stderr.write(text)
                os.unlink(logname)
                return code or 1
            time.sleep(0.02)
    child.terminate()  # never mounted in time: our own child, by its handle
    child.wait()
    sys.stderr.write(f"ddfs: simulate did not mount {kw['mountpoint']} in {deadline_s:.0f}s\n")
    return 1
