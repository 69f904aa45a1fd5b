"""The ``ddfs`` command line (click), its entry point: ``rescue`` (a drop-in for ddrescue),
``mount``, ``domain``, ``simulate`` and ``demo`` are defined here. The other command modules
(``log``, ``map``/``status``, ``overlay``, ``report``) register themselves on the group
:func:`main` of :mod:`ddfs.commands.common` when imported; the group imports each only when
its command is run or listed (``main.lazy``), so that ``ddfs rescue`` starts quickly.

This module only parses arguments and reports; the work is done by ``engine`` and the FUSE
modules of this package.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ddfs.commands.common import DdrescueCommand, fail, main
from ddfs.commands.rescue_options import build_options, rescue_options
from engine.errors import DdfsError
from engine.options import RescueOptions

main.lazy.update(
    {
        "log": "ddfs.commands.log",
        "map": "ddfs.commands.map",
        "status": "ddfs.commands.map",
        "overlay": "ddfs.commands.overlay",
        "report": "ddfs.commands.report",
        "completion": "ddfs.commands.completion",
        "hash": "ddfs.commands.hash",
        "first": "ddfs.commands.first",
    }
)


@main.command(cls=DdrescueCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("infile")
@click.argument("outfile")
@click.argument("mapfile", required=False)
@rescue_options
def rescue(infile: str, outfile: str, mapfile: str | None, **kw: Any) -> None:
    """Rescue INFILE into OUTFILE, keeping the map in MAPFILE, as GNU ddrescue does."""
    from ddfs.commands.rescue import rescue_main

    rescue_main(infile, outfile, mapfile, kw)


@main.command(cls=DdrescueCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("infile")
@click.argument("outfile")
@click.argument("mapfile")
@click.argument("mountpoint")
@rescue_options
@click.option(
    "--read-timeout",
    default="5",
    metavar="SECONDS",
    help="answer an on-demand read by then (EIO or zeros) [5]",
)
@click.option(
    "--unreadable",
    type=click.Choice(["eio", "zero"]),
    default="eio",
    help="what a read of bad or unrescued data returns [eio]",
)
@click.option("--allow-other", is_flag=True, help="let other users read the mount")
@click.option("--loop", is_flag=True, help="also attach image and partitions as loop devices")
@click.option(
    "--overlay",
    metavar="OVERLAY",
    help="make image and partitions writable; writes go to OVERLAY (copy-on-write)",
)
@click.option(
    "--repair-view",
    is_flag=True,
    help="serve a rescued backup in place of a lost primary structure (read-only)",
)
def mount(
    infile: str,
    outfile: str,
    mapfile: str,
    mountpoint: str,
    read_timeout: str,
    unreadable: str,
    allow_other: bool,
    loop: bool,
    overlay: str | None,
    repair_view: bool,
    **kw: Any,
) -> None:
    """Rescue INFILE as `ddfs rescue` does and serve the image at MOUNTPOINT while it runs.

    MOUNTPOINT holds `image`, `p1`, `p2`, ... (one per partition), `mapfile` (the live map) and
    `status.json`. Reads of data not rescued yet jump the queue.
    """
    from ddfs.commands.mount import MountOptions, run_mount

    try:
        opts = build_options(kw, ["ddfs", "mount", *sys.argv[2:]])
        if opts.fill_types is not None or opts.generate or opts.command_mode:
            raise DdfsError("Fill, generate and command modes are not available in 'ddfs mount'.")
        timeout = float(read_timeout)
        if timeout <= 0:
            raise DdfsError("--read-timeout must be positive.")
    except (DdfsError, ValueError) as exc:
        fail(exc.message if isinstance(exc, DdfsError) else f"Bad --read-timeout: {exc}")
    mopts = MountOptions(
        read_timeout=timeout,
        unreadable=unreadable,
        allow_other=allow_other,
        loop=loop,
        overlay=overlay,
        repair_view=repair_view,
    )
    raise SystemExit(run_mount(infile, outfile, mapfile, mountpoint, opts, mopts))


@main.command(cls=DdrescueCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("infile")
@click.argument("outfile")
@click.argument("mapfile")
@click.argument("domain_map")
@click.option(
    "--tier",
    type=click.Choice(["metadata", "used", "all"]),
    default="metadata",
    help="metadata (P0-P3), used (file data, P4) or all (P0-P4) [metadata]",
)
@click.option(
    "--path",
    "paths",
    multiple=True,
    metavar="VOL:/PATH",
    help="the files and folders named instead of a tier (p1:/dir; repeatable)",
)
@click.option("-q", "--quiet", is_flag=True, help="suppress all messages")
def domain(
    infile: str,
    outfile: str,
    mapfile: str,
    domain_map: str,
    tier: str,
    paths: tuple[str, ...],
    quiet: bool,
) -> None:
    """Write DOMAIN_MAP, a ddrescue domain mapfile of the filesystem metadata of INFILE.

    What the planner reads is rescued into OUTFILE and recorded in MAPFILE, as ddfs rescue
    would; then `ddrescue -m DOMAIN_MAP INFILE OUTFILE MAPFILE` rescues those areas first.
    With --path, the domain is the named files and folders (recursively) instead.
    """
    from ddfs.commands.domain import run_domain
    from engine.damage.files import parse_spec

    opts = RescueOptions(quiet=quiet, command_line=" ".join(["ddfs", "domain", *sys.argv[2:]]))
    opts.first = list(paths)
    try:
        for spec in paths:
            parse_spec(spec)
    except DdfsError as exc:
        fail(exc.message.replace("'--first'", "'--path'"))
    raise SystemExit(run_domain(infile, outfile, mapfile, domain_map, tier, opts))


@main.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.argument("mountpoint", type=click.Path(exists=True, file_okay=False))
@click.option("--bad", "bad", metavar="TESTMAP", help="ddrescue map: - * / blocks read as bad")
@click.option("--rate", default="0", metavar="BYTES/S", help="transfer rate (0: unlimited)")
@click.option("--seek-ms", default=0.0, type=float, help="time of a non-sequential read")
@click.option("--error-ms", default=0.0, type=float, help="extra time of a failed read")
@click.option("--weak", multiple=True, metavar="POS:SIZE:TRIES", help="area that fails TRIES times")
@click.option("--hang", "hang", metavar="POS:SIZE", multiple=True, help="area whose reads hang")
@click.option("--log-reads", metavar="FILE", help="append 'pos size ok|error' for every read")
@click.option(
    "--foreground/--background",
    default=True,
    help="stay in the foreground [default]; --background returns once mounted "
    "(the server's messages then go to a log file named on stderr)",
)
def simulate(**kw: Any) -> None:
    """Serve IMAGE as a failing disk MOUNTPOINT/disk (read-only FUSE), with stats.json."""
    from ddfs.simulate.fusefs import main as simulate_main

    raise SystemExit(simulate_main(**kw))


@main.command()
@click.option("--size", default="64Mi", help="size of the generated disk [64Mi]")
@click.option("--keep", is_flag=True, help="keep the demo directory")
def demo(size: str, keep: bool) -> None:
    """Use a generated disk's files while a simulated failing disk is being rescued."""
    from ddfs.commands.demo import run_demo
    from engine.numbers import parse_number

    raise SystemExit(run_demo(parse_number(size, "--size"), keep))
