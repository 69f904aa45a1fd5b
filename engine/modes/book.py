"""What fill mode and generate mode share: a run over a map whose saves follow the same rules
as a rescue's (atomic, at the ``--mapfile-interval``, 30 s by default), and the interrupt."""

from __future__ import annotations

import time

from engine.errors import DdfsError
from engine.map.blockmap import BlockMap
from engine.map.mapfile import format_header, iter_mapfile_text, save_mapfile
from engine.options import RescueOptions


class Interrupted(Exception):
    """A signal arrived; the map is saved and the signal re-raised by the caller."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class ModeBook:
    """The map side of a fill or generate run; subclasses set the fields in ``__init__``."""

    opts: RescueOptions
    mapfile: str | None
    bmap: BlockMap
    current_pos: int
    status: str
    current_pass: int
    start_time: float
    _last_save: float

    def before_save(self) -> None:
        """What must reach the disk before the map claims it (fill: the output)."""

    def maybe_save(self) -> None:
        interval = self.opts.save_interval if self.opts.save_interval >= 0 else 30
        if time.monotonic() - self._last_save >= interval:
            self.save()

    def save(self, message: str = "") -> None:
        """Write the map atomically.

        Raises:
            DdfsError: the mapfile could not be written.
        """
        if self.mapfile is None:
            return
        self.before_save()
        header = format_header(self.opts.command_line, self.start_time, time.time(), message)
        text = iter_mapfile_text(
            self.bmap, self.current_pos, self.status, self.current_pass, header
        )
        try:
            save_mapfile(self.mapfile, text)
        except OSError as exc:
            raise DdfsError(f"Error writing mapfile '{self.mapfile}': {exc.strerror}") from None
        self._last_save = time.monotonic()
