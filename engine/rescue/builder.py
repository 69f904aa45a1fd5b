"""The builder: paths and options in, a ready :class:`~engine.rescue.book.RescueBook` out.

:func:`prepare` is the one place where a rescue is put together, for ``ddfs rescue``,
``ddfs mount`` (through :func:`engine.ondemand.facade.build_live`), ``ddfs domain`` and the
tests: ddrescue's refusals, the test map (``-H``), the domain, the map loaded and normalised,
the source's identity checked against the one the map records, ``--ask``, the output opened
and preallocated, the map book and the rescue book. Nothing is written before every check
has passed; on any error what was opened is closed again.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from engine.errors import DdfsError
from engine.map.blockmap import BAD_SECTOR, NON_SCRAPED, NON_TRIED, NON_TRIMMED, BlockMap
from engine.map.book import MapBook
from engine.map.mapfile import MapData, parse_mapfile
from engine.options import RescueOptions
from engine.rescue import maplock
from engine.rescue.book import RescueBook
from engine.rescue.identity import Identity, identify, merging_note, read_identity, refusal
from engine.rescue.output import Output
from engine.rescue.samecopy import compare_with_image
from engine.rescue.setup import (
    Declined,
    about_to_copy,
    block_borders,
    change_statuses,
    check_paths,
    load_map,
    make_domain,
    normalise,
    read_domain_map,
    retrim_adjacent,
    sticky_borders,
    verify_input_size,
)
from engine.rescue.source import Source
from engine.schedule.choose import schedule_for

Domain = list[tuple[int, int]]


def prepare(
    infile: str,
    outfile: str,
    mapfile: str | None,
    opts: RescueOptions,
    confirm: Callable[[str], bool] | None = None,
) -> tuple[RescueBook, bool]:
    """Check, open and load everything. Returns the rescue book and whether the map existed.

    With ``--ask``, ``confirm`` is shown the summary of :func:`about_to_copy` before the output
    is opened; a False answer ends the run with exit 1 and nothing written.

    Raises:
        DdfsError: a refusal or a bad file, with ddrescue's message and status.
        NothingToDo: the domain is empty (exit 0).
    """
    check_paths(infile, outfile, mapfile, opts)
    lock = maplock.acquire(mapfile) if mapfile not in (None, "-") else None
    try:
        rescuer, existed = _prepare(infile, outfile, mapfile, opts, confirm)
    except BaseException:
        if lock is not None:
            maplock.release(lock)
        raise
    rescuer.map_lock = lock
    return rescuer, existed


def _prepare(
    infile: str,
    outfile: str,
    mapfile: str | None,
    opts: RescueOptions,
    confirm: Callable[[str], bool] | None,
) -> tuple[RescueBook, bool]:
    test_map = _test_map(opts)
    domain_map = read_domain_map(opts)
    data = load_map(mapfile)
    existed = not data.blank
    if opts.truncate and existed and data.bmap.end > 0:
        raise DdfsError("Outfile truncation and mapfile input are incompatible.")
    source = Source(infile, opts.sector_size, opts.direct_in, test_map)
    source.bad_sector_data = opts.bad_sector_data
    source.continue_errnos = frozenset(opts.continue_errnos)
    try:
        _input_size(source, outfile, opts)
        notices: list[str] = []
        identity = _check_source(infile, outfile, source, data, (mapfile, existed), opts, notices)
        domain, borders = _domain(data, source.size, opts, domain_map)
        if opts.ask and confirm is not None and domain:
            text = about_to_copy(infile, outfile, source, domain, opts.binary_prefixes)
            if not confirm(text):
                raise Declined("")
        output = _open_output(outfile, opts, domain)
    except BaseException:
        source.close()
        raise
    sticky = sticky_borders(data.bmap, borders) if borders else None
    try:
        book = MapBook(data, domain, mapfile, sticky, opts.save_interval, opts.sync_interval)
        rescuer = RescueBook(opts, source, output, book, schedule_for(opts))
    except BaseException:
        output.close()
        source.close()
        raise
    rescuer.identity_line = identity.line()
    rescuer.notices = notices
    return rescuer, existed


def _input_size(source: Source, outfile: str, opts: RescueOptions) -> None:
    """ddrescue 1.30's ``--size=output`` (the output's size stands for the input's, cut by a
    test map as the input's is) and ``-x 0`` (extend the output to the input's size)."""
    if opts.size_from_output:
        try:
            fd = os.open(outfile, os.O_RDONLY)
        except OSError:
            fd = -1  # no output yet: the input's own size, as ddrescue does
        if fd >= 0:
            try:
                size = os.lseek(fd, 0, os.SEEK_END)
            finally:
                os.close(fd)
            source.size = size if source.test_map is None else min(size, source.size)
    if opts.extend_to_input and source.size > 0:
        opts.min_outfile_size = source.size


def _test_map(opts: RescueOptions) -> BlockMap | None:
    """``-H``: the test mapfile that says which sectors of the input read well."""
    if opts.test_map is None:
        return None
    if not os.path.exists(opts.test_map) and opts.test_map != "-":
        raise DdfsError(f"{opts.test_map}: Test mapfile does not exist or is not readable.")
    return parse_mapfile(opts.test_map, loose=opts.loose_domain).bmap


def _check_source(
    infile: str,
    outfile: str,
    source: Source,
    data: MapData,
    mapfile_existed: tuple[str | None, bool],
    opts: RescueOptions,
    notices: list[str],
) -> Identity:
    """``-I``, and the source's identity against the one the map records: another source
    goes on when sampled rescued sectors hold the same data in it and in the image (a note
    says so), else it is refused."""
    mapfile, existed = mapfile_existed
    if opts.verify_input_size:
        verify_input_size(data, source.size, mapfile)
    identity = identify(source.fd, source.size)
    recorded = read_identity(mapfile) if existed else None
    if recorded is None or opts.allow_other_source:
        return identity
    diff = recorded.difference(identity, opts.complete_only)
    if diff:
        opos = opts.output_pos if opts.output_pos is not None else opts.input_pos
        offset = opos - opts.input_pos
        found = compare_with_image(source, outfile, offset, data.bmap, opts.sector_size)
        if found.differ:
            raise DdfsError(refusal(infile, diff, found.differ, found.compared))
        notices.append(merging_note(infile, diff, found.compared))
    return identity


def _domain(
    data: MapData, insize: int, opts: RescueOptions, domain_map: Domain | None
) -> tuple[Domain, list[int]]:
    """The map normalised to the input, the domain, ``-M`` and ``-A``; returns the domain and
    the block borders to keep."""
    joined = normalise(data, insize, opts)
    domain = make_domain(data.bmap, insize, opts, domain_map)
    borders = block_borders(data.bmap, domain) if opts.retrim or opts.try_again else []
    borders = sorted(set(borders).union(joined))
    if opts.retrim and opts.old_meanings:
        change_statuses(data.bmap, domain, NON_SCRAPED + BAD_SECTOR, NON_TRIMMED)
    elif opts.retrim:
        retrim_adjacent(data.bmap, domain)
    if opts.try_again:
        change_statuses(data.bmap, domain, NON_TRIMMED + NON_SCRAPED, NON_TRIED)
    return domain, borders


def _open_output(outfile: str, opts: RescueOptions, domain: Domain) -> Output:
    """The output, opened for writing (``-p``: preallocated over the domain)."""
    output = Output(
        outfile,
        truncate=opts.truncate,
        direct=opts.direct_out,
        compare=opts.compare,
        sparse=opts.sparse,
        synchronous=opts.synchronous,
    )
    if opts.preallocate and domain:
        offset = (
            opts.output_pos if opts.output_pos is not None else opts.input_pos
        ) - opts.input_pos
        dend = domain[-1][1] + offset
        if output.is_regular and output.size() < dend:
            output.preallocate(domain[0][0] + offset, domain[-1][1] - domain[0][0])
    return output
