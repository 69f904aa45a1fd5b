"""Metadata first: where a disk's filesystem metadata lives, found by reading it.

The planner walks the partition table and, per partition, the filesystem found by its
signature, the way fsck would: every structure is read (through the engine, so it is rescued
as it is parsed), validated, and leads to the next (a directory to its children). What it
finds is recorded as :class:`Area` objects in tiers, which the rescue then works through
before the rest of the disk:

* P0 anchors: partition tables, boot sectors, superblocks, the last 64 KiB of the disk and of
  each partition (where tools probe for backups);
* P1 primary maps: group descriptors, FAT 1, the first MFT records, allocation bitmaps;
* P2 core metadata: used inode tables, bitmaps, directories, extent and indirect blocks, the
  in-use MFT, index allocations, journal superblock;
* P3 redundancy and logs: backup superblocks and descriptors, FAT 2, $MFTMirr, backup boot
  regions, the GPT backup, journals;
* P4 used file data.

Each filesystem is a module of its own with ``NAME``, ``probe(vol)`` and ``plan(vol, plan)``
(see :mod:`engine.metadata.ext`), listed with the cheap test of its magic bytes in
:data:`engine.metadata.signatures.SIGNATURES`; the planner imports a module only when its test
passes. Supporting another filesystem means adding a module and its entry there.
"""
