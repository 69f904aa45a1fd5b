"""Abstract Unix sockets named after a file's real path, and who is at the other end.

An abstract socket leaves no file behind and the kernel releases it when its process ends,
however it ends; both uses in ddfs rely on that: the lock that keeps one process per mapfile
(:mod:`engine.rescue.maplock`, taken at every rescue's start) and the control socket of a
running mount (:mod:`ddfs.live.control`).

Start-up matters here (issue 13): :func:`listen_abstract` uses the ``_socket`` extension
itself (``socket`` with its ``selectors`` costs 3 ms), and a path short enough is its own name
(``hashlib`` costs 3 ms more); only a long path is hashed.
"""

from __future__ import annotations

import _socket
import os
from typing import Protocol

MAX_NAME = 100  # an abstract name is at most 107 bytes


class _Socket(Protocol):  # a socket.socket, or trio's socket over one
    def getsockopt(self, level: int, option: int, buflen: int) -> bytes: ...


def abstract_name(kind: str, path: str) -> bytes:
    """``\\0ddfs-KIND:<real path>`` (the same for every spelling of a path), the real path
    hashed when it is too long to be part of the name."""
    real = os.path.realpath(path).encode("utf-8", "surrogateescape")
    name = b"\0ddfs-" + kind.encode() + b":" + real
    if len(name) <= MAX_NAME:
        return name
    import hashlib

    return b"\0ddfs-" + kind.encode() + b"#" + hashlib.sha256(real).hexdigest().encode()


def listen_abstract(name: bytes) -> _socket.socket:
    """A stream socket bound to ``name`` and listening (closed on exec).

    Raises:
        OSError: the name is taken (EADDRINUSE: another process holds it).
    """
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.bind(name)
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    return sock


def peer_credentials(sock: _Socket) -> tuple[int, int, int]:
    """``(pid, uid, gid)`` of the process at the other end of a connected Unix socket."""
    import struct

    creds = struct.unpack("3i", sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12))
    return creds[0], creds[1], creds[2]
