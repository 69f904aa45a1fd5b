"""``ddfs overlay OVERLAY --list | --reset | --apply IMAGE [--to-output]``: the repairs kept in a
mount's overlay, listed, thrown away, or written into a copy of the rescued image.

The work is done by :mod:`ddfs.live.overlay`; this is the command line. ``--reset`` and ``--apply``
take the overlay's lock, so they refuse to run while a mount uses it.
"""

from __future__ import annotations

import sys

import click

from ddfs.commands.common import fail, main
from ddfs.live.overlay import Overlay, apply_overlay
from engine.errors import DdfsError


@main.command("overlay", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("overlay")
@click.option("--list", "do_list", is_flag=True, help="show the ranges the overlay holds")
@click.option("--reset", is_flag=True, help="throw the overlay's writes away")
@click.option("--apply", "target", metavar="IMAGE", help="write the overlay's ranges into IMAGE")
@click.option(
    "--to-output",
    is_flag=True,
    help="allow --apply to write into the rescue's own OUTFILE",
)
def overlay(overlay: str, do_list: bool, reset: bool, target: str | None, to_output: bool) -> None:
    """List, reset or apply OVERLAY, the copy-on-write file of `ddfs mount --overlay`."""
    chosen = [on for on in (do_list, reset, target is not None) if on]
    if len(chosen) != 1:
        what = "Only one operation can be given." if chosen else "Give --list, --reset or --apply."
        fail(f"{what}\nTry 'ddfs overlay --help' for more information.")
    if to_output and target is None:
        fail("--to-output goes with --apply.")
    try:
        if do_list:
            list_overlay(overlay)
        elif reset:
            reset_overlay(overlay)
        else:
            assert target is not None
            apply_to(overlay, target, to_output)
    except DdfsError as exc:
        fail(exc.message, exc.exit_code)


def list_overlay(path: str) -> None:
    """One ``pos size`` line per written range (hex, as ddrescuelog writes), then a total."""
    ov = Overlay.load(path)
    try:
        ranges = ov.written()
    finally:
        ov.close()
    out = sys.stdout
    out.write("#      pos        size\n")
    for pos, size in ranges:
        out.write(f"0x{pos:08X}  0x{size:08X}\n")
    total = sum(size for _pos, size in ranges)
    out.write(f"# {len(ranges)} range(s), {total} bytes written, image {ov.size} bytes\n")


def reset_overlay(path: str) -> None:
    ov = Overlay.load(path, writable=True)
    try:
        before = ov.written_bytes
        ov.reset()
    finally:
        ov.close()
    sys.stdout.write(f"{path}: reset ({before} bytes of writes thrown away)\n")


def apply_to(path: str, target: str, to_output: bool) -> None:
    ov = Overlay.load(path, writable=True)  # locked: no mount writes while it is copied
    try:
        ranges, total = apply_overlay(ov, target, to_output=to_output)
    finally:
        ov.close()
    sys.stdout.write(f"{target}: {ranges} range(s), {total} bytes written from {path}\n")
