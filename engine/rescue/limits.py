"""The limits that end a run (ddrescue's ``errors_or_timeout``) and ``-J``'s check after errors.

:class:`Limits` is asked before each read, each phase and at the end of the schedule:
``--max-bad-areas`` (``-e``, relative with ``+N``), ``--max-read-errors``, ``--timeout``
(``-T``), ``--max-error-rate`` (``-E``) and a failed ``-J`` check. :class:`VerifyOnError`
keeps the latest good sector; after an error it reads that sector again and records why the
run must stop, if it must.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.errors import DdfsError, Stop
from engine.numbers import format_size
from engine.options import RescueOptions
from engine.rescue.rates import RateClock
from engine.rescue.source import Source


class VerifyOnError:
    """``-J``: after an error, read the latest good sector again; stop (before the next read)
    if it fails or differs, or if no read had succeeded yet."""

    def __init__(self, source: Source, ss: int) -> None:
        self.source = source
        self.ss = ss
        self.last: tuple[int, bytes] | None = None  # the latest good sector, and where
        self.failure = ""

    def keep(self, pos: int, data: memoryview) -> None:
        """Remember a good sector read at ``pos`` (``data`` holds at least one sector)."""
        self.last = (pos, bytes(data[: self.ss]))

    def after_read(self, pos: int, copied: int, error_size: int, data: memoryview) -> None:
        ss = self.ss
        if copied >= ss and pos % ss == 0:
            self.keep(pos, data)
        if not error_size or self.failure:
            return
        path = self.source.path
        if self.last is None:
            self.failure = f"{path}: Read error found before the first good read."
            return
        again, err = self.source.reread(self.last[0], ss)
        if len(again) != ss:
            reason = f": {os.strerror(err)}" if err else ""
            self.failure = f"{path}: Input file no longer returns data{reason}"
        elif again != self.last[1]:
            self.failure = f"{path}: Input file returns inconsistent data."


@dataclass
class Counters:
    """What the limits look at, kept by the rescue book."""

    read_errors: int = 0
    last_good_read: float | None = None


class Limits:
    """ddrescue's limits over a run's counters, the map's bad areas and the rates."""

    def __init__(
        self,
        opts: RescueOptions,
        counters: Counters,
        bad_areas: Callable[[], int],
        rates: RateClock,
        start_time: float,
        verify: VerifyOnError | None,
    ) -> None:
        self.opts = opts
        self.counters = counters
        self.bad_areas = bad_areas
        self.rates = rates
        self.start_time = start_time
        self.verify = verify
        self.initial_bad_areas = bad_areas()
        o = opts
        self.active = (
            o.max_bad_areas >= 0
            or o.max_read_errors >= 0
            or o.timeout >= 0
            or o.max_error_rate >= 0
            or o.verify_on_error
        )

    def check(self) -> None:
        """Raise :class:`Stop` (or the ``-J`` failure) when a limit is reached."""
        o = self.opts
        if o.max_bad_areas >= 0:
            limit = o.max_bad_areas + (self.initial_bad_areas if o.max_bad_areas_relative else 0)
            if self.bad_areas() > limit:
                raise Stop("Too many bad areas in input file")
        self.check_read_errors()
        if o.timeout >= 0 and self.counters.read_errors:
            since = self.counters.last_good_read
            if time.time() - (since if since is not None else self.start_time) > o.timeout:
                raise Stop("Timeout expired")
        if self.rates.error_rate_exceeded:
            rate = format_size(self.rates.error_rate, o.binary_prefixes)
            raise Stop(f"Too high error rate reading input file ({rate}B/s)")
        if self.verify is not None and self.verify.failure:
            raise DdfsError(self.verify.failure)

    def check_read_errors(self) -> None:
        """``--max-read-errors``: also checked right after each read, as in ddrescue."""
        if 0 <= self.opts.max_read_errors < self.counters.read_errors:
            raise Stop("Too many read errors")

    def reached(self) -> bool:
        try:
            self.check()
        except Stop:
            return True
        return False
