"""The schedules by name, as ``--schedule`` selects them."""

from __future__ import annotations

from engine.errors import DdfsError
from engine.options import RescueOptions
from engine.schedule.base import Schedule
from engine.schedule.ddrescue127 import Ddrescue127
from engine.schedule.ddrescue130 import Ddrescue130
from engine.schedule.delimit import Delimit

SCHEDULES: dict[str, type[Schedule]] = {
    "ddfs": Delimit,
    "ddrescue-1.27": Ddrescue127,
    "ddrescue-1.30": Ddrescue130,
}
ALIASES = {"1.27": "ddrescue-1.27", "127": "ddrescue-1.27"}
ALIASES.update({"1.30": "ddrescue-1.30", "130": "ddrescue-1.30"})


def schedule_for(opts: RescueOptions) -> Schedule:
    """The schedule a run uses: the one ``--schedule`` names, except that options which ask
    for ddrescue's passes themselves (``--cpass``, ``-R``, ``-a``) get ddrescue 1.30's."""
    if opts.schedule == "ddfs" and (
        opts.cpass is not None or opts.reverse or opts.min_read_rate is not None
    ):
        return Ddrescue130()
    return schedule_named(opts.schedule)


def schedule_named(name: str) -> Schedule:
    """A new schedule of the strategy ``name``.

    Raises:
        DdfsError: no such schedule (exit 1, as a usage error).
    """
    cls = SCHEDULES.get(ALIASES.get(name, name))
    if cls is None:
        known = ", ".join(SCHEDULES)
        raise DdfsError(f"Unknown schedule '{name}' (one of: {known}).")
    return cls()
