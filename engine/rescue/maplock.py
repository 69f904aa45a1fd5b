"""One process per mapfile: a second ``ddfs rescue`` or ``ddfs mount`` on a mapfile that a
running ddfs is using is refused before anything is opened for writing.

The lock is an abstract Unix socket named after the mapfile's real path: the kernel releases it
when the process ends, however it ends (``kill -9`` included), and it leaves no file behind. (A
lock on the mapfile itself would not do: each save renames a new file over it.) The holder
listens on it, so the refusal can name the holder's PID (``SO_PEERCRED``). A process may take
the same lock again (tests run several rescues in one process); the last release frees it.
"""

from __future__ import annotations

import _socket

from engine.abstract_socket import abstract_name, listen_abstract, peer_credentials
from engine.errors import DdfsError

_held: dict[bytes, tuple[_socket.socket, int]] = {}  # name -> (socket, times taken)


def acquire(mapfile: str) -> bytes:
    """Take the lock of ``mapfile``; returns its name (for :func:`release`).

    Raises:
        DdfsError: another process holds it (exit 1).
    """
    name = abstract_name("map", mapfile)
    if name in _held:
        sock, times = _held[name]
        _held[name] = (sock, times + 1)
        return name
    try:
        sock = listen_abstract(name)
    except OSError:
        raise DdfsError(f"{mapfile}: Mapfile is in use by another ddfs{_holder(name)}.") from None
    _held[name] = (sock, 1)
    return name


def release(name: bytes) -> None:
    """Give the lock back (the socket is closed at the last release)."""
    if name not in _held:
        return
    sock, times = _held[name]
    if times > 1:
        _held[name] = (sock, times - 1)
        return
    del _held[name]
    sock.close()


def _holder(name: bytes) -> str:
    """`` (pid N)`` of the process holding ``name``, if it can be asked."""
    import socket  # (only for a refusal)

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            probe.connect(name)
            pid = peer_credentials(probe)[0]
    except OSError:
        return ""
    return f" (pid {pid})" if pid > 0 else ""
