"""``ddfs first MOUNTPOINT p1:/dir ...``: files first while a ``ddfs mount`` runs.

The request goes to the mount's control socket (:mod:`ddfs.live.control`); the mount's engine
finds the files with the filesystem scanners and reads them right after the metadata, before the
rest of the schedule. The answer says, per path, how many files were found; the progress is then
in ``ddfs status MOUNTPOINT``, ``MOUNTPOINT/status.json`` and the mount's screen.
"""

from __future__ import annotations

import json
import os
import socket
import sys

import click

from ddfs.commands.common import DdrescueCommand, fail, main
from engine.errors import DdfsError

HELP = {"help_option_names": ["-h", "--help"]}


@main.command("first", cls=DdrescueCommand, context_settings=HELP)
@click.argument("mountpoint")
@click.argument("paths", nargs=-1, required=True, metavar="VOL:/PATH...")
def first(mountpoint: str, paths: tuple[str, ...]) -> None:
    """Rescue the files at VOL:/PATH (p1:/home/alice/Photos, or /dir on the first filesystem;
    a directory brings everything under it) next, in the ddfs mount at MOUNTPOINT."""
    from engine.damage.files import parse_spec

    try:
        for spec in paths:
            parse_spec(spec)
        reply = ask(mountpoint, {"first": list(paths)})
    except DdfsError as exc:
        fail(exc.message, exc.exit_code)
    if reply.get("error"):
        fail(f"{mountpoint}: {reply['error']}")
    missing = 0
    for req in reply.get("requests", []):
        if req["found"]:
            sys.stdout.write(f"{req['request']}: {req['files']} file(s), rescued next\n")
        else:
            missing += 1
            sys.stdout.write(f"{req['request']}: not found\n")
    said = {f"files first: {spec} not found" for spec in paths}  # (the lines above say it)
    for note in reply.get("notes", []):
        if note not in said:
            sys.stderr.write(f"ddfs: {note}\n")
    sys.exit(1 if missing else 0)


def ask(mountpoint: str, request: dict[str, object]) -> dict[str, object]:
    """Send ``request`` to the mount at ``mountpoint`` and return its answer.

    Raises:
        DdfsError: there is no running ddfs mount there, or it did not answer.
    """
    from ddfs.live.control import socket_name

    if not os.path.ismount(mountpoint):
        raise DdfsError(f"{mountpoint}: Not a mount point.")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(socket_name(mountpoint))
        except OSError:
            raise DdfsError(f"{mountpoint}: Not a running ddfs mount.") from None
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    try:
        answer = json.loads(data)
    except ValueError:
        raise DdfsError(f"{mountpoint}: The mount stopped before it answered.") from None
    if not isinstance(answer, dict):
        raise DdfsError(f"{mountpoint}: The mount gave an answer ddfs can't read.")
    return answer
