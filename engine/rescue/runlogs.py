"""``--log-events`` and ``--log-rates``: ddrescue 1.27's event and rate logs.

The events log is appended to (a blank line between runs): one line per pass that reads,
``%14s  %s  %s`` (run time as ``1h:02m:03s``, percentage rescued, the pass's message), the
messages that end a run indented by 22 spaces, and ``End of run (0x%08X  <status>)``. The rates
log is rewritten: one line per second, ``%2d  0x%08X  %8d  %8d  %7d  %8d`` (time, position,
current rate, average rate, bad areas, bad size).
"""

from __future__ import annotations

import os
import time
from typing import TextIO

from engine import DDRESCUE_VERSION, __version__
from engine.map.mapfile import PHASE_NAMES


def dhms(seconds: int) -> str:
    """ddrescue's log time: ``5s``, ``2m:05s``, ``1h:02m:05s``, ``1d:01h:02m:05s``."""
    s, m, h, d = seconds % 60, seconds // 60 % 60, seconds // 3600 % 24, seconds // 86400
    if d:
        return f"{d}d:{h:02d}h:{m:02d}m:{s:02d}s"
    if h:
        return f"{h}h:{m:02d}m:{s:02d}s"
    if m:
        return f"{m}m:{s:02d}s"
    return f"{s}s"


def file_header(kind: str, command_line: str) -> str:
    """The comment lines every ddrescue log starts with."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"# {kind}. Created by ddfs {__version__} (GNU ddrescue {DDRESCUE_VERSION} format)\n"
        f"# Command line: {command_line}\n# Start time:   {stamp}\n"
    )


def close_log(fh: TextIO) -> None:
    """The last line of every log, then close it."""
    fh.write(f"# End time:     {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    fh.close()


class EventLog:
    """``--log-events=FILE``."""

    def __init__(self, path: str, command_line: str) -> None:
        existed = os.path.exists(path)
        self._fh = open(path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        if existed:
            self._fh.write("\n")
        self._fh.write(file_header("Events Logfile", command_line))
        self._fh.write("#         Time  Rescued  Event\n")

    def event(self, elapsed: int, percent: str, message: str) -> None:
        self._fh.write(f"{dhms(elapsed):>14}  {percent}  {message}\n")

    def echo(self, message: str) -> None:
        self._fh.write(f"{'':22}{message}\n")

    def end_of_run(self, elapsed: int, percent: str, pos: int, status: str) -> None:
        name = PHASE_NAMES.get(status, status)
        self._fh.write(f"{dhms(elapsed):>14}  {percent}  End of run (0x{pos:08X}  {name})\n")

    def close(self) -> None:
        close_log(self._fh)


class RateLog:
    """``--log-rates=FILE``: at most one line per second of run time."""

    def __init__(self, path: str, command_line: str) -> None:
        self._fh = open(path, "w", encoding="utf-8", errors="replace")  # noqa: SIM115
        self._fh.write(file_header("Rates Logfile", command_line))
        self._fh.write("#Time  Ipos  Current_rate  Average_rate  Bad_areas  Bad_size\n")
        self._last = -1

    def line(
        self, elapsed: int, ipos: int, c_rate: int, a_rate: int, bad_areas: int, bad_size: int
    ) -> None:
        if elapsed > self._last:
            self._last = elapsed
            self._fh.write(
                f"{elapsed:2d}  0x{ipos:08X}  {c_rate:8d}  {a_rate:8d}  {bad_areas:7d}"
                f"  {bad_size:8d}\n"
            )

    def close(self) -> None:
        close_log(self._fh)
