"""What every ``ddfs`` process shares, without click: the program name, ``fail``, the signal
handlers and the old ddrescue option names. :mod:`ddfs.commands.entry` runs a plain ``ddfs
rescue`` with these alone; :mod:`ddfs.commands.common` adds the click parts.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

PROG = "ddfs"


def fail(message: str, code: int = 1) -> None:
    """Print ``ddfs: MESSAGE`` on stderr and exit with ``code``."""
    lines = message.split("\n")
    indent = " " * (len(PROG) + 2)
    sys.stderr.write(f"{PROG}: {lines[0]}\n" + "".join(f"{indent}{x}\n" for x in lines[1:]))
    sys.stderr.flush()
    raise SystemExit(code)


def install_signal_handlers(on_signal: Any) -> None:
    """SIGINT, SIGTERM and SIGHUP record the first signal; SIGUSR1/2 are ignored."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def reraise(signum: int) -> None:
    """Die by the same signal, so the shell sees 128+signum (ddrescue does this)."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


#: Old (pre-1.27) long option names -> (current long name, short name). ``--no-split`` was
#: "don't split failed blocks", the quick first pass of old manuals; 1.27 spells that pass
#: ``-n`` (--no-scrape), which still trims (add ``-N`` to skip trimming too).
OLD_OPTIONS = {
    "--no-split": ("--no-scrape", "-n"),
    "--max-retries": ("--retry-passes", "-r"),
    "--direct": ("--idirect", "-d"),
    "--block-size": ("--sector-size", "-b"),
    "--generate-logfile": ("--generate-mode", "-G"),
    "--max-errors": ("--max-bad-areas", "-e"),
}
