"""``ddfs report IMAGE MAPFILE [--json]``: the files and directories with damaged or unrescued
bytes, per partition, with their full paths (the work is done by :mod:`engine.damage`).

Exit status: 0 when the report was made (whatever it found), 1 for a bad argument (a missing
or unreadable file, a usage error), 2 for a malformed mapfile (as ddrescue).

``--json`` prints one object, stable for scripts (new keys may be added; none will change
meaning). All sizes and positions are in bytes; positions are absolute in the image::

    {
      "version": 1,
      "image": "disk.img", "mapfile": "disk.map", "image_size": 67108864,
      "bad": 4096,            # bytes the map calls bad ("-") in the whole image
      "unrescued": 8192,      # bytes not rescued yet ("?", "*", "/"; and past the map's end)
      "disk_metadata": [HIT, ...],   # partition-table sectors hit
      "notes": ["..."],
      "partitions": [{
        "number": 1,          # Linux numbering; null for a bare filesystem (no table)
        "name": "",           # a logical volume's "VG-LV" (after the PV that holds it)
        "scheme": "gpt",      # "gpt", "mbr", "none", or "lvm" for a logical volume
        "start": 1048576, "size": 33554432,
        "filesystem": "ext",  # "ext", "ntfs", "fat", "exfat", or null (not recognised)
        "bad": 4096, "unrescued": 0,          # inside this partition
        "files": [ENTRY, ...],                # entries with damaged bytes, extent "known"
        "unknown_extent": [ENTRY, ...],       # entries whose own metadata is unreadable
        "metadata": [HIT, ...],               # filesystem structures hit
        "unclaimed": {"bad": 0, "unrescued": 0},  # damage no entry or structure claims
        "notes": ["..."]
      }]
    }

    ENTRY = {"path": "/dir/<dir inode 1234>/file.txt",
             "type": "file",          # "file", "directory", "symlink" or "other"
             "id": "inode 57",        # "inode N", "MFT N", "cluster N", "entry at N"
             "size": 12345,           # the size its metadata gives; null if unknown
             "bad": 4096, "unrescued": 0,   # bytes of its content in such areas (known part)
             "extent": "known",       # "known", "partial" or "unknown"
             "name_lost": true,       # a path component is a placeholder (<dir inode N>,
                                      # <MFT N>, <dir cluster N>) or starts with <unknown>
             "reason": ""}            # why the extent is not known
    HIT = {"structure": "inode table of group 3", "start": 1234944, "size": 262144,
           "bad": 4096, "unrescued": 0}
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

import click

from ddfs.commands.common import PROG, fail, main
from engine.errors import DdfsError

if TYPE_CHECKING:  # the filesystem walkers load only when the command runs
    from engine.damage.model import Entry, MetaHit
    from engine.damage.report import PartitionReport, Report


class ReportCommand(click.Command):
    """Usage errors exit 1 with a pointer to ``ddfs report --help``, as ddrescue's do."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            fail(f"{exc.format_message()} Try '{PROG} report --help' for more information.")
            raise  # not reached: fail() exits


@main.command("report", cls=ReportCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("image")
@click.argument("mapfile", required=False)
@click.option("--json", "as_json", is_flag=True, help="print a JSON object for scripts")
def report(image: str, mapfile: str | None, as_json: bool) -> None:
    """List the files and directories of IMAGE with bytes MAPFILE does not call finished.

    For each partition with an ext2/3/4, NTFS, FAT or exFAT filesystem (or a bare filesystem):
    the files and directories with bytes in bad areas ("-") or in areas not rescued yet ("?",
    "*", "/"), with their full paths; the files whose own metadata is unreadable (unknown
    extent); and the filesystem structures hit. Exit status 0 when the report is made.
    IMAGE may be the mount point of a running ``ddfs mount`` (no MAPFILE): its image against
    a snapshot of its live map.
    """
    try:
        from engine.damage.report import build_report

        if mapfile is None:
            result = _report_of_mount(image, build_report)
        else:
            result = build_report(image, mapfile)
    except DdfsError as exc:
        fail(exc.message, exc.exit_code)
        return
    if as_json:
        json.dump(result.to_dict(), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        write_text(result, sys.stdout)


def _report_of_mount(mountpoint: str, build: Any) -> Report:
    """``ddfs report MOUNTPOINT``: ``MOUNTPOINT/image`` against a snapshot of the live map."""
    import os
    import tempfile

    if not os.path.exists(os.path.join(mountpoint, "status.json")):
        raise DdfsError(
            f"{mountpoint}: Not the mount point of a running ddfs mount; give IMAGE MAPFILE."
        )
    with tempfile.TemporaryDirectory(prefix="ddfs-report-") as tmp:
        snapshot = os.path.join(tmp, "mapfile")
        with open(os.path.join(mountpoint, "mapfile"), "rb") as src, open(snapshot, "wb") as dst:
            dst.write(src.read())
        result: Report = build(os.path.join(mountpoint, "image"), snapshot)
    result.mapfile = os.path.join(mountpoint, "mapfile")
    return result


# ------------------------------------------------------------------ the human report
def write_text(r: Report, out: TextIO) -> None:
    """The report as readable tables, one section per partition."""
    out.write(f"Image {r.image} ({r.image_size} bytes) against {r.mapfile}\n")
    out.write(f"Not finished: {r.bad} bytes bad, {r.unrescued} bytes not rescued yet\n")
    if r.disk_metadata:
        out.write("\nPartition table hit:\n")
        _hits(r.disk_metadata, out)
    if r.notes:
        out.write("\n")
    for note in r.notes:
        out.write(f"Note: {note}\n")
    for p in r.partitions:
        _partition(p, out)


def _partition(p: PartitionReport, out: TextIO) -> None:
    if p.scheme == "lvm":
        where = f"logical volume {p.name}"
    else:
        where = "whole disk" if p.number is None else f"partition {p.number} ({p.scheme})"
    fs = p.filesystem or "no known filesystem"
    out.write(f"\n== {where}, bytes {p.start}-{p.start + p.size - 1}: {fs} ==\n")
    out.write(f"Not finished here: {p.bad} bytes bad, {p.unrescued} bytes not rescued yet\n")
    if p.filesystem is None:
        _notes(p, out)
        return
    damaged, unknown = p.damaged, p.unknown
    if damaged:
        out.write(f"\nFiles and directories with damaged bytes ({len(damaged)}):\n")
        _entries(damaged, out)
    elif p.bad or p.unrescued:
        out.write("\nNo file or directory has damaged bytes.\n")
    if unknown:
        out.write(f"\nUnknown extent: their own metadata is unreadable ({len(unknown)}):\n")
        _unknown(unknown, out)
    if p.metadata:
        out.write(f"\nMetadata structures hit ({len(p.metadata)}):\n")
        _hits(p.metadata, out)
    if p.unclaimed_bad or p.unclaimed_unrescued:
        out.write(
            f"\nNot in any file or structure found (free space, slack, or lost entries): "
            f"{p.unclaimed_bad} bytes bad, {p.unclaimed_unrescued} bytes not rescued\n"
        )
    if any(e.name_lost for e in p.entries):
        out.write(
            "\nIn a path, <dir inode N>, <MFT N> or <dir cluster N> stands for a name that is"
            " unreadable,\nand <unknown> for a chain of parents lost above it.\n"
        )
    _notes(p, out)


def _entries(entries: list[Entry], out: TextIO) -> None:
    out.write(f"  {'BAD':>12} {'UNRESCUED':>12}  {'TYPE':<9} {'ID':<14} PATH\n")
    for e in entries:
        out.write(f"  {e.bad:>12} {e.unrescued:>12}  {e.kind:<9} {e.ident:<14} {e.path}\n")


def _unknown(entries: list[Entry], out: TextIO) -> None:
    out.write(f"  {'BAD':>12} {'UNRESCUED':>12}  {'TYPE':<9} {'ID':<14} PATH  (WHY)\n")
    for e in entries:
        part = " (partial)" if e.extent == "partial" else ""
        out.write(
            f"  {e.bad:>12} {e.unrescued:>12}  {e.kind:<9} {e.ident:<14} {e.path}{part}"
            f"  ({e.reason})\n"
        )


def _hits(hits: list[MetaHit], out: TextIO) -> None:
    out.write(f"  {'BAD':>12} {'UNRESCUED':>12}  STRUCTURE\n")
    for h in hits:
        out.write(f"  {h.bad:>12} {h.unrescued:>12}  {h.what}\n")


def _notes(p: PartitionReport, out: TextIO) -> None:
    if p.notes:
        out.write("\nNotes:\n")
        for n in p.notes:
            out.write(f"  - {n}\n")
