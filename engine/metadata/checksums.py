"""The checksums of on-disk metadata the planners verify before they trust what it says: CRC-16
(ANSI, reflected 0xA001: Linux ``crc16``, ext4's ``uninit_bg`` group descriptors) and CRC-32C
(Castagnoli, reflected 0x82F63B78: Linux ``crc32c``, ext4 ``metadata_csum``, btrfs, XFS), both
raw: the caller gives the seed, and no final inversion is made (as the kernel's functions)."""

from __future__ import annotations


def _table(poly: int) -> list[int]:
    out = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        out.append(c)
    return out


_CRC16 = _table(0xA001)
_CRC32C = _table(0x82F63B78)


def crc16(crc: int, data: bytes) -> int:
    """Linux ``crc16(crc, data, len)``."""
    table = _CRC16
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc


def crc32c(crc: int, data: bytes) -> int:
    """Linux ``crc32c(crc, data, len)`` (``__crc32c_le``): no inversion in or out."""
    table = _CRC32C
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc
