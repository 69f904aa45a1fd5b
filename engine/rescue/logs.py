"""A run's logs together: ``--log-reads``, ``--log-events`` and ``--log-rates``.

:class:`RunLogs` opens them (with ddrescue's message for a file that cannot be opened), writes
the phase lines of the read log once per new message, and closes them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from engine.errors import DdfsError
from engine.options import RescueOptions
from engine.rescue.readlog import ReadLog
from engine.rescue.runlogs import EventLog, RateLog


class RunLogs:
    """The open logs of a run (each None when not asked for)."""

    def __init__(self, opts: RescueOptions) -> None:
        self.reads: ReadLog | None = None
        self.events: EventLog | None = None
        self.rates: RateLog | None = None
        self._logged_message = ""
        o = opts
        try:
            if o.log_events:
                self.events = self._open(EventLog, o.log_events, "events", o.command_line)
            if o.log_rates:
                self.rates = self._open(RateLog, o.log_rates, "rates", o.command_line)
            if o.log_reads:
                read_log = partial(ReadLog, errno_column=not o.old_meanings)
                self.reads = self._open(read_log, o.log_reads, "reads", o.command_line)
        except DdfsError:
            self.close()
            raise

    @staticmethod
    def _open(cls: Callable[[str, str], Any], path: str, kind: str, command_line: str) -> Any:
        try:
            return cls(path, command_line)
        except OSError as exc:
            raise DdfsError(f"{path}: Can't open file for logging {kind}: {exc.strerror}") from None

    def phase(self, message: str, elapsed: float) -> None:
        """A read is about to be made under ``message``: log it once per new message."""
        if self.reads is not None and message != self._logged_message:
            self.reads.phase(message, elapsed)
            self._logged_message = message

    def close(self) -> None:
        for log in (self.reads, self.events, self.rates):
            if log is not None:
                log.close()
        self.reads = self.events = self.rates = None
