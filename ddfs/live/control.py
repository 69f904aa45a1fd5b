"""The mount's control socket: how ``ddfs first MOUNTPOINT p1:/dir`` reaches a running
``ddfs mount``.

An abstract Unix socket (no file to leave behind: it goes with the process, even after
``kill -9``) named after the mount point's real path, so a client finds it from the mount point
alone. A request is one JSON line, ``{"first": ["p1:/dir", ...]}``; the answer is one JSON line,
``{"requests": [{"request", "found", "files"}], "notes": [...], "error": null}``, sent once the
engine thread has found the files (their reading is then queued before the rest of the
schedule). Only the mount's own user, or root, is answered (``SO_PEERCRED``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys

import trio

from ddfs.live.view import View
from engine.abstract_socket import abstract_name, peer_credentials
from engine.errors import DdfsError

log = logging.getLogger(__name__)
LIMIT = 1 << 20  # the longest request taken


def socket_name(mountpoint: str) -> bytes:
    """The abstract socket name of the mount at ``mountpoint``."""
    return abstract_name("mount", mountpoint)


async def serve_control(view: View, name: bytes) -> None:
    """Answer ``ddfs first`` on the socket ``name`` (:func:`socket_name`, worked out before the
    mount: the trio thread must never look up a path under its own mount) until cancelled. A
    name already taken is said once; the mount goes on without the socket."""
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(name)
    except OSError as exc:
        sys.stderr.write(
            f"ddfs: no control socket ({exc.strerror}): 'ddfs first' can't reach this mount\n"
        )
        sock.close()
        return
    sock.listen(8)
    with sock:
        async with trio.open_nursery() as nursery:
            while True:
                conn, _ = await sock.accept()
                nursery.start_soon(_answer, view, conn)


async def _answer(view: View, conn: trio.socket.SocketType) -> None:
    """One request, one answer; whatever happens here, the mount goes on."""
    stream = trio.SocketStream(conn)
    try:
        async with stream:
            try:
                reply = await _handle(view, conn, stream)
            except DdfsError as exc:
                reply = {"error": exc.message}
            except (ValueError, TypeError, KeyError) as exc:
                reply = {"error": f"bad request: {exc}"}
            await stream.send_all(json.dumps(reply).encode() + b"\n")
    except Exception:  # (a client gone away included)
        log.exception("control request failed")


async def _handle(
    view: View, conn: trio.socket.SocketType, stream: trio.SocketStream
) -> dict[str, object]:
    _pid, uid, _gid = peer_credentials(conn)
    if uid not in (0, os.getuid()):
        return {"error": "Permission denied (not the mount's user)"}
    data = b""
    while not data.endswith(b"\n") and len(data) < LIMIT:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        data += chunk
    specs = json.loads(data)["first"]
    if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs) or not specs:
        raise ValueError("'first' must be a list of paths")
    job = view.live.add_first(specs)
    await trio.to_thread.run_sync(job.done.wait, abandon_on_cancel=True)
    return {"requests": job.found, "notes": job.notes, "error": job.error}
