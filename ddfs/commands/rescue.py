"""``ddfs rescue`` end to end: prepare, step the engine with the status screen, stop cleanly.

Signals are recorded and honoured between reads; every way out does the final save (output
fsync, then the map) and ends with ddrescue's exit status, re-raising a caught signal.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ddfs.commands.notify import notify
from ddfs.commands.process import PROG, fail, install_signal_handlers, reraise
from ddfs.commands.rescue_options import build_options
from engine.errors import DdfsError, Stop
from engine.ondemand.metadata_first import metadata_first, plan_summary, tier_line
from engine.options import RescueOptions
from engine.rescue.book import RescueBook
from engine.rescue.builder import prepare
from engine.rescue.screen import StatusScreen, version_line
from engine.rescue.setup import Declined, NothingToDo


def rescue_main(infile: str, outfile: str, mapfile: str | None, kw: dict[str, Any]) -> None:
    """``ddfs rescue`` once its command line is parsed (by click, or by
    :func:`ddfs.commands.rescue_table.parse_fast`): exits with ddrescue's status."""
    try:
        opts = build_options(kw, ["ddfs", "rescue", *sys.argv[2:]])
    except DdfsError as exc:
        fail(exc.message, exc.exit_code)
    raise SystemExit(run_rescue(infile, outfile, mapfile, opts))


def run_rescue(infile: str, outfile: str, mapfile: str | None, opts: RescueOptions) -> int:
    """Run a rescue (or fill or generate mode); return the exit status (or die by a re-raised
    signal)."""
    if opts.fill_types is not None or opts.generate:
        return run_other_mode(infile, outfile, mapfile, opts)
    pending: list[int] = []
    book_ref: list[RescueBook] = []

    def on_signal(signum: int, _frame: object) -> None:
        if not pending:
            pending.append(signum)
        if book_ref:
            book_ref[0].interrupted = pending[0]

    install_signal_handlers(on_signal)
    try:
        book, existed = prepare(infile, outfile, mapfile, opts, confirm=ask_user)
    except NothingToDo as exc:
        if not opts.quiet:
            print(exc.message)
        return 0
    except Declined:
        return 1
    except DdfsError as exc:
        fail(exc.message, exc.exit_code)
    book_ref.append(book)
    if not opts.quiet:
        for note in book.notices:
            sys.stderr.write(f"{PROG}: {note}\n")
    if pending:
        book.interrupted = pending[0]
    if not book.map.domain:
        if not opts.quiet:
            sys.stderr.write(f"{PROG}: Nothing to do; domain is empty.\n")  # as ddrescue
        book.source.close()
        book.output.close()
        return 0
    if opts.command_mode:
        if not opts.quiet:
            print(version_line().rstrip("\n"), flush=True)
        return _command_mode(book, mapfile)
    screen = StatusScreen(sys.stdout, quiet=opts.quiet, binary=opts.binary_prefixes)
    book.on_progress = None if opts.quiet else screen.update
    stop, error = _rescue(book, screen, existed, mapfile, opts)
    return _finish(book, screen, stop, error)


def _create_map(book: RescueBook, mapfile: str | None) -> None:
    """A new mapfile is written at once, as ddrescue does (exit 1 if it cannot be)."""
    if mapfile is not None and not os.path.exists(mapfile):
        try:
            book.save()
        except DdfsError as exc:
            fail(f"Can't create mapfile: {exc.message}")


def _command_mode(book: RescueBook, mapfile: str | None) -> int:
    """``--command-mode``: the commands on standard input drive the reads
    (:mod:`engine.modes.command`)."""
    from engine.modes.command import CommandMode

    try:
        _create_map(book, mapfile)
        return CommandMode(book, sys.stdout).run(sys.stdin)
    finally:
        book.close()
        book.source.close()
        book.output.close()


def _rescue(
    book: RescueBook,
    screen: StatusScreen,
    existed: bool,
    mapfile: str | None,
    opts: RescueOptions,
) -> tuple[Stop | None, DdfsError | None]:
    """The run itself: a new mapfile at once, metadata first, the schedule, the output's last
    adjustments. Returns what stopped it, or the error that ended it."""
    try:
        _create_map(book, mapfile)
        screen.start(book, existed)
        if opts.metadata_first:
            plan = metadata_first(book)
            if plan is not None and not opts.quiet:
                screen.note(plan_summary(plan))
                screen.extra = lambda: tier_line(plan, book)
        book.run()
        book.finish_output()
    except Stop as exc:
        return exc, None
    except DdfsError as exc:
        return None, exc
    except Exception as exc:  # a bug: still save the map (it never claims unwritten data)
        import traceback

        traceback.print_exc()
        return None, DdfsError(f"Internal error: {type(exc).__name__}: {exc}")
    return None, None


def _finish(
    book: RescueBook, screen: StatusScreen, stop: Stop | None, error: DdfsError | None
) -> int:
    """Every way out: the final save, the last screen, the logs' end, the exit status."""
    try:
        book.save(final=True)
    except DdfsError as exc:
        if error is not None:  # say both: the map could not be saved after the first error
            sys.stderr.write(f"ddfs: {exc.message}\n")
        error = error or exc
    final = "Finished" if stop is None and error is None else f"  {stop or 'Mapfile error'}"
    screen.finish(book, final if error is None or stop else "")
    book.log_end(str(stop) if stop is not None else "")
    book.close()
    book.source.close()
    book.output.close()
    files = (book.source.path, book.output.path, book.map.mapfile or "")
    if error is not None:
        notify(book.opts.notify_command, "error", error.exit_code, error.message, files)
        fail(error.message, error.exit_code)
    if stop is not None:
        code = 128 + stop.signum if stop.signum else 1
        notify(book.opts.notify_command, "stopped", code, str(stop), files)
        if stop.signum:
            reraise(stop.signum)
        return 1
    if book.opts.hashes:
        write_record(book)
    notify(book.opts.notify_command, "finished", 0, "Finished", files)
    return 0


def write_record(book: RescueBook) -> None:
    """``--hash``: the case record of the finished image, beside the mapfile."""
    import time

    from engine.damage.record import hash_image, record_text

    where = (book.map.mapfile or book.output.path) + ".record"
    try:
        hashes = hash_image(book.output.path, book.offset + book.map.bmap.end, book.opts.hashes)
        text = record_text(
            hashes,
            book.map.bmap,
            image=book.output.path,
            mapfile=book.map.mapfile or "",
            command_line=book.opts.command_line,
            identity=book.identity_line,
            started=book.start_time,
            ended=time.time(),
        )
        with open(where, "w", encoding="utf-8") as fh:
            fh.write(text)
    except (OSError, DdfsError) as exc:
        msg = exc.message if isinstance(exc, DdfsError) else f"{where}: {exc.strerror}"
        sys.stderr.write(f"ddfs: the case record was not written: {msg}\n")
        return
    if not book.opts.quiet:
        print(f"Case record with the image's hashes: {where}")


def ask_user(summary: str) -> bool:
    """``--ask``: show the summary and read one answer; only one starting with y proceeds."""
    sys.stdout.write(version_line() + summary + "Proceed (y/N)? ")
    sys.stdout.flush()
    answer = sys.stdin.readline()
    return answer[:1].lower() == "y"


def run_other_mode(infile: str, outfile: str, mapfile: str | None, opts: RescueOptions) -> int:
    """Fill mode (``-F``) or generate mode (``-G``) on the same map and output.

    The map is saved at the end of every way out; a write error (fill mode without ``-w``)
    exits 1 and a signal is re-raised after the save, as in a rescue.
    """
    from engine.modes import fill, generate

    pending: list[int] = []
    job_ref: list[fill.Filler | generate.Generator] = []

    def on_signal(signum: int, _frame: object) -> None:
        if not pending:
            pending.append(signum)
        if job_ref:
            job_ref[0].interrupted = pending[0]

    install_signal_handlers(on_signal)
    try:
        if opts.fill_types is not None:
            job: fill.Filler | generate.Generator = fill.Filler(infile, outfile, mapfile, opts)
        else:
            job = generate.Generator(infile, outfile, mapfile, opts)
    except DdfsError as exc:
        fail(exc.message, exc.exit_code)
    job_ref.append(job)
    if pending:
        job.interrupted = pending[0]
    verb = "Filling blocks" if isinstance(job, fill.Filler) else "Generating approximate mapfile"
    if not opts.quiet:
        print(f"{verb}...", flush=True)
    error: DdfsError | None = None
    signum = 0
    try:
        job.run()
    except (fill.Interrupted, generate.Interrupted) as exc:
        signum = exc.signum
    except DdfsError as exc:
        error = exc
    message = "Finished" if error is None and not signum else ("Interrupted" if signum else "")
    try:
        job.save(message)
    except DdfsError as exc:
        if error is not None:
            sys.stderr.write(f"ddfs: {exc.message}\n")
        error = error or exc
    job.close()
    if not opts.quiet:
        if isinstance(job, fill.Filler):
            print(f"filled size: {job.filled} B,  filled areas: {job.areas}")
        else:
            print(f"checked size: {job.checked} B,  found data: {job.found} B")
        print("Interrupted by user" if signum else message or "Error")
    if error is not None:
        fail(error.message, error.exit_code)
    if signum:
        reraise(signum)
        return 1
    return 0
