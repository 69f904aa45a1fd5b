"""Loop devices over the mount's files: ``--loop``'s own (:class:`LoopDevices`), and those any
process attached to a file under the mount point (:func:`loops_under`), read from sysfs: a
killed mount leaves its loop devices holding the dead FUSE connection, and the next start
detaches them (:func:`clear_dead_mount`); a stop finds the users that keep the mount busy.

Only sysfs and ``/proc/self/mountinfo`` are read here, never a path under the mount (a dead or
busy mount must not be touched, and the trio thread must never look up its own mount).
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import trio

from ddfs.live.view import View
from engine.errors import DdfsError


def loops_under(mountpoint: str) -> list[tuple[str, str]]:
    """``(/dev/loopN, backing file)`` of every loop device whose file is under
    ``mountpoint``."""
    top = os.path.realpath(mountpoint) + os.sep
    out = []
    for path in sorted(glob.glob("/sys/block/loop*/loop/backing_file")):
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as fh:
                backing = fh.read().strip().removesuffix(" (deleted)")
        except OSError:
            continue  # (detached meanwhile)
        if backing.startswith(top):
            out.append(("/dev/" + path.split("/")[3], backing))
    return out


def mounts() -> dict[str, tuple[str, str]]:
    """Mount point -> (source, filesystem type), from ``/proc/self/mountinfo``."""
    out = {}
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        for line in fh:
            fields = line.split()
            sep = fields.index("-")
            where = fields[4].encode().decode("unicode_escape")  # (\040 for a blank)
            out[where] = (fields[sep + 2], fields[sep + 1])
    return out


def users_of(mountpoint: str) -> list[str]:
    """``/dev/loop3 (p1, mounted on /mnt/x)`` per loop device over a file of the mount."""
    where = {src: at for at, (src, _fs) in mounts().items()}
    out = []
    for dev, backing in loops_under(mountpoint):
        name = os.path.basename(backing)
        out.append(
            f"{dev} ({name}, mounted on {where[dev]})" if dev in where else f"{dev} ({name})"
        )
    return out


def clear_dead_mount(mountpoint: str) -> str | None:
    """A dead ddfs mount at ``mountpoint`` (its process was killed): detach the loop devices
    it left and remove it. Returns what was done, or None when there is no dead ddfs mount.

    Raises:
        DdfsError: a filesystem is still mounted from one of its loop devices (the user must
            unmount it first), or the dead mount could not be removed.
    """
    top = os.path.realpath(mountpoint)
    table = mounts()
    if table.get(top, ("", ""))[1] != "fuse.ddfs":
        return None
    devices = loops_under(top)
    busy = [(dev, at) for at, (src, _fs) in table.items() for dev, _ in devices if src == dev]
    if busy:
        dev, at = busy[0]
        raise DdfsError(
            f"{mountpoint}: a previous ddfs mount died, and {dev} over its files is still "
            f"mounted on {at}.\nUnmount it ('umount {at}'), then run ddfs mount again."
        )
    for dev, _ in devices:
        subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)
    res = subprocess.run(["fusermount3", "-u", "-z", top], capture_output=True, text=True)
    if res.returncode != 0:
        raise DdfsError(
            f"{mountpoint}: a previous mount is dead and can't be removed: {res.stderr.strip()}"
        )
    what = "a dead ddfs mount removed"
    if devices:
        what += "; its loop device(s) " + ", ".join(dev for dev, _ in devices) + " detached"
    return what


class LoopDevices:
    """``--loop``: ``image`` and each partition file attached as loop devices, read-only
    unless the mount has an overlay (then writes through them go to the overlay).

    One loop device per file (rather than ``losetup -P``) works on every kernel, including
    those built without partition-table parsing, and maps each partition to a device name.
    """

    def __init__(self, writable: bool = False) -> None:
        self.devices: dict[str, str] = {}
        self.argv = ["losetup", "-f", "--show"] if writable else ["losetup", "-r", "-f", "--show"]

    async def attach(self, path: str) -> None:
        res = await trio.to_thread.run_sync(
            lambda: subprocess.run([*self.argv, path], capture_output=True, text=True)
        )
        if res.returncode != 0:
            sys.stderr.write(f"ddfs: losetup {path} failed: {res.stderr.strip()}\n")
            return
        self.devices[path] = res.stdout.strip()
        sys.stderr.write(f"ddfs: {os.path.basename(path)} attached as {res.stdout.strip()}\n")

    async def attach_all(self, mountpoint: str, view: View) -> None:
        await self.attach(os.path.join(mountpoint, "image"))
        while not view.partitions and not view.live.background_done:
            await trio.sleep(0.5)
        for p in view.partitions:
            await self.attach(os.path.join(mountpoint, p.file_name))

    async def detach(self) -> None:
        devices, self.devices = list(self.devices.values()), {}
        for dev in devices:
            await trio.to_thread.run_sync(
                lambda dev=dev: subprocess.run(["losetup", "-d", dev], capture_output=True)
            )
        for dev in devices:
            backing = f"/sys/block/{os.path.basename(dev)}/loop/backing_file"
            with trio.move_on_after(10):
                while os.path.exists(backing):  # the kernel lets go of the file lazily
                    await trio.sleep(0.05)
