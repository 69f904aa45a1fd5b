"""``ddfs rescue`` end to end: prepare, step the engine with the status screen, stop cleanly.

Signals are recorded and honoured between reads; every way out does the final save (output
fsync, then the map) and ends with ddrescue's exit status, re-raising a caught signal.
"""

from __future__ import annotations

import os
import sys

from ddfs.commands.cli import fail, install_signal_handlers, reraise
from engine.errors import DdfsError
from engine.metadata.through import metadata_first, plan_summary, tier_line
from engine.options import RescueOptions
from engine.progress.screen import StatusScreen, version_line
from engine.rescue.rescuer import Rescuer, Stop
from engine.rescue.setup import Declined, NothingToDo, prepare


def run_rescue(infile: str, outfile: str, mapfile: str | None, opts: RescueOptions) -> int:
    """Run a rescue (or fill or generate mode); return the exit status (or die by a re-raised
    signal)."""
    if opts.fill_types is not None or opts.generate:
        return run_other_mode(infile, outfile, mapfile, opts)
    pending: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        if not pending:
            pending.append(signum)
        if rescuer_ref:
            rescuer_ref[0].interrupted = pending[0]

    rescuer_ref: list[Rescuer] = []
    install_signal_handlers(on_signal)
    try:
        rescuer, existed = prepare(infile, outfile, mapfile, opts, confirm=ask_user)
    except NothingToDo as exc:
        if not opts.quiet:
            print(exc.message)
        return 0
    except Declined:
        return 1
    except DdfsError as exc:
        fail(exc.message, exc.exit_code)
    rescuer_ref.append(rescuer)
    if pending:
        rescuer.interrupted = pending[0]
    if not rescuer.domain:
        if not opts.quiet:
            print("Nothing to do; domain is empty.")
        rescuer.source.close()
        rescuer.output.close()
        return 0
    screen = StatusScreen(sys.stdout, quiet=opts.quiet, binary=opts.binary_prefixes)
    rescuer.on_progress = None if opts.quiet else screen.update
    error: DdfsError | None = None
    stop: Stop | None = None
    try:
        if mapfile is not None and not os.path.exists(mapfile):
            try:
                rescuer.save()
            except DdfsError as exc:
                fail(f"Can't create mapfile: {exc.message}")
        screen.start(rescuer, existed)
        if opts.metadata_first:
            plan = metadata_first(rescuer)
            if plan is not None and not opts.quiet:
                print(plan_summary(plan), flush=True)
                screen.extra = lambda: tier_line(plan, rescuer)
        rescuer.run()
        rescuer.finish_output()
    except Stop as exc:
        stop = exc
    except DdfsError as exc:
        error = exc
    except Exception as exc:  # a bug: still save the map (it never claims unwritten data)
        import traceback

        traceback.print_exc()
        error = DdfsError(f"Internal error: {type(exc).__name__}: {exc}")
    try:
        rescuer.save(final=True)
    except DdfsError as exc:
        if error is not None:  # say both: the map could not be saved after the first error
            sys.stderr.write(f"ddfs: {exc.message}\n")
        error = error or exc
    final = "Finished" if stop is None and error is None else f"  {stop or 'Mapfile error'}"
    screen.finish(rescuer, final if error is None or stop else "")
    rescuer.log_end(str(stop) if stop is not None else "")
    rescuer.close()
    rescuer.source.close()
    rescuer.output.close()
    if error is not None:
        fail(error.message, error.exit_code)
    if stop is not None:
        if stop.signum:
            reraise(stop.signum)
        return 1
    return 0


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
