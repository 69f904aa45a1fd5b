"""``ddfs hash IMAGE MAPFILE``: the case record of an image (:mod:`engine.damage.record`) made
later, or again: the image's hashes, whole and per partition, with the map's figures and bad
areas and the source identity the mapfile recorded, into ``MAPFILE.record`` (or ``-o FILE``).
"""

from __future__ import annotations

import os
import sys

import click

from ddfs.commands.common import DdrescueCommand, fail, main
from engine.errors import DdfsError


@main.command("hash", cls=DdrescueCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("image")
@click.argument("mapfile")
@click.option("--hash", "algorithms", default="sha256", metavar="ALGS", help="[sha256]")
@click.option("-o", "--output", metavar="FILE", help="the record's file [MAPFILE.record]")
def hash_command(image: str, mapfile: str, algorithms: str, output: str | None) -> None:
    """Hash IMAGE (and each partition in it) and write the case record beside MAPFILE."""
    from engine.damage.record import hash_image, parse_algorithms, record_text
    from engine.map.header import header_comments
    from engine.map.mapfile import parse_mapfile

    try:
        algs = parse_algorithms(algorithms)
        if not os.access(mapfile, os.R_OK):
            raise DdfsError(f"{mapfile}: Mapfile does not exist or is not readable.")
        data = parse_mapfile(mapfile)
        hashes = hash_image(image, data.bmap.end, algs)
        identity = next((c for c in header_comments(mapfile) if "Source identity" in c), "")
        text = record_text(
            hashes,
            data.bmap,
            image=image,
            mapfile=mapfile,
            command_line=" ".join(["ddfs", *sys.argv[1:]]),
            identity=identity,
        )
        where = output or mapfile + ".record"
        with open(where, "w", encoding="utf-8") as fh:
            fh.write(text)
    except DdfsError as exc:
        fail(exc.message, exc.exit_code)
    except OSError as exc:
        fail(f"{exc.filename}: {exc.strerror}")
    sys.stdout.write(text)
