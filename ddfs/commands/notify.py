"""``--notify-command CMD``: tell someone that a long rescue has ended. CMD runs through the
shell once, when ``ddfs rescue`` ends or stops (or ``ddfs mount`` is unmounted), with what
happened in its environment:

* ``DDFS_STATUS``: ``finished`` (the schedule is complete), ``stopped`` (a signal or a limit)
  or ``error`` (a fatal error);
* ``DDFS_EXIT``: the exit status ddfs is about to return (128 + N for signal N);
* ``DDFS_MESSAGE``: the last line ddfs shows (``Finished``, ``Interrupted by user``, the error);
* ``DDFS_INFILE``, ``DDFS_OUTFILE``, ``DDFS_MAPFILE``: the command's files.

Its failure is reported on stderr and changes nothing else.
"""

from __future__ import annotations

import os
import sys


def notify(
    command: str | None, status: str, exit_code: int, message: str, files: tuple[str, ...]
) -> None:
    """Run ``command`` (if any) with the outcome in its environment; wait at most 60 s."""
    if not command:
        return
    import subprocess  # only when there is a command: not on every rescue's start-up

    infile, outfile, mapfile = (*files, "", "", "")[:3]
    env = {
        **os.environ,
        "DDFS_STATUS": status,
        "DDFS_EXIT": str(exit_code),
        "DDFS_MESSAGE": message.strip(),
        "DDFS_INFILE": infile,
        "DDFS_OUTFILE": outfile,
        "DDFS_MAPFILE": mapfile or "",
    }
    sys.stdout.flush()
    try:
        done = subprocess.run(
            command, shell=True, env=env, stdin=subprocess.DEVNULL, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        sys.stderr.write(f"ddfs: --notify-command failed: {exc}\n")
        return
    if done.returncode:
        sys.stderr.write(f"ddfs: --notify-command exited with {done.returncode}\n")
