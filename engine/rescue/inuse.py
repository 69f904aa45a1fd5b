"""Whether a block device is in use by the system: mounted (itself or one of its partitions),
used as swap, or held by another device (device-mapper, md, a loop device's backing). A rescue
refuses to write such an output, with or without ``-f``: it would destroy a live filesystem,
and the kernel's own caches would then write over the rescued data.

Everything comes from ``/proc/self/mountinfo``, ``/proc/swaps`` and ``/sys/dev/block``; a system
without them answers "not in use".
"""

from __future__ import annotations

import os


def _devices(rdev: int) -> list[str]:
    """``MAJ:MIN`` of the device and of each of its partitions."""
    own = f"{os.major(rdev)}:{os.minor(rdev)}"
    found = [own]
    base = f"/sys/dev/block/{own}"
    try:
        entries = os.listdir(base)
    except OSError:
        return found
    for entry in entries:
        try:
            with open(os.path.join(base, entry, "dev"), encoding="ascii") as fh:
                if os.path.exists(os.path.join(base, entry, "partition")):
                    found.append(fh.read().strip())
        except OSError:
            continue
    return found


def _mounted(devices: list[str]) -> str | None:
    """By the device number of the mount, or by its source (btrfs and other filesystems that
    span devices show an anonymous device number)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) < 5:
                    continue
                after = line.split(" - ", 1)[1].split() if " - " in line else []
                source = after[1] if len(after) > 1 else ""
                if fields[2] in devices or _device_of(source) in devices:
                    mountpoint = fields[4].replace("\\040", " ")
                    return f"mounted on {mountpoint}"
    except OSError:
        pass
    return None


def _device_of(path: str) -> str:
    """``MAJ:MIN`` of the block device ``path`` ("" if it is none)."""
    if not path.startswith("/dev/"):
        return ""
    try:
        rdev = os.stat(path).st_rdev
    except OSError:
        return ""
    return f"{os.major(rdev)}:{os.minor(rdev)}" if rdev else ""


def _swap(rdev: int) -> str | None:
    try:
        with open("/proc/swaps", encoding="utf-8", errors="replace") as fh:
            next(fh, None)
            for line in fh:
                name = line.split()[0] if line.split() else ""
                try:
                    if os.stat(name).st_rdev == rdev:
                        return "used as swap"
                except OSError:
                    continue
    except OSError:
        pass
    return None


def _holders(devices: list[str]) -> str | None:
    for dev in devices:
        try:
            holders = os.listdir(f"/sys/dev/block/{dev}/holders")
        except OSError:
            continue
        if holders:
            return f"held by {', '.join(sorted(holders))}"
    return None


def device_in_use(rdev: int) -> str | None:
    """How the block device ``rdev`` (or a partition of it) is in use, or None."""
    devices = _devices(rdev)
    return _mounted(devices) or _swap(rdev) or _holders(devices)
