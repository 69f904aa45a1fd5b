"""Abstract Unix sockets named after a file's real path, and who is at the other end.

An abstract socket leaves no file behind and the kernel releases it when its process ends,
however it ends; both uses in ddfs rely on that: the lock that keeps one process per mapfile
(:mod:`engine.rescue.maplock`) and the control socket of a running mount
(:mod:`ddfs.live.control`).
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
from typing import Protocol

_CREDS = struct.Struct("3i")


class _Socket(Protocol):  # a socket.socket, or trio's socket over one
    def getsockopt(self, level: int, option: int, buflen: int) -> bytes: ...


def abstract_name(kind: str, path: str) -> str:
    """``\\0ddfs-KIND-<hash of path's real path>`` (the same for every spelling of a path)."""
    real = os.path.realpath(path).encode("utf-8", "surrogateescape")
    return f"\0ddfs-{kind}-" + hashlib.sha256(real).hexdigest()[:40]


def peer_credentials(sock: _Socket) -> tuple[int, int, int]:
    """``(pid, uid, gid)`` of the process at the other end of a connected Unix socket."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDS.size)
    pid, uid, gid = _CREDS.unpack(creds)
    return pid, uid, gid
