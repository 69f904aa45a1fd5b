"""The helpers every command shares: the click group ``main`` the commands register on,
``fail``, the signal handlers, and :class:`DdrescueCommand` (ddrescue's usage errors and old
option names).

This module imports none of the command modules, so each of them can import it. The entry
module :mod:`ddfs.commands.cli` names the modules of the other commands in ``main.lazy``:
:class:`DdfsGroup` imports one (which registers its commands on ``main``) only when its
command is run or listed, so ``ddfs rescue`` does not pay for the start-up of the others.
"""

from __future__ import annotations

import gc
import importlib
import sys
from typing import Any

import click

from ddfs.commands.process import (  # re-exported: the commands import them from here
    OLD_OPTIONS,
    PROG,
    fail,
    install_signal_handlers,
    reraise,
)
from ddfs.commands.rescue_table import preview_default
from engine import __version__

__all__ = ["OLD_OPTIONS", "PROG", "fail", "install_signal_handlers", "reraise"]

def _option_names(command: click.Command) -> tuple[set[str], set[str]]:
    """The option names ``command`` knows, and those of them that take a value."""
    takes_value: set[str] = set()
    known: set[str] = set()
    for param in command.params:
        if isinstance(param, click.Option) and param.expose_value:
            known.update(param.opts)
            if not param.is_flag and not param.count:
                takes_value.update(param.opts)
    return known, takes_value


def rewrite_old_options(command: click.Command, args: list[str]) -> tuple[list[str], list[str]]:
    """Replace the old option names of :data:`OLD_OPTIONS` in ``args`` by their short options.

    Only names the command knows are rewritten; values of options that take one and
    everything after ``--`` are left alone. Returns the new args and one note per alias used.
    """
    known, takes_value = _option_names(command)
    out: list[str] = []
    notes: list[str] = []
    skip_value = False
    for i, arg in enumerate(args):
        if skip_value:
            skip_value = False
            out.append(arg)
            continue
        if arg == "--":
            out.extend(args[i:])
            break
        name, eq, value = arg.partition("=")
        if name in OLD_OPTIONS and OLD_OPTIONS[name][1] in known:
            long, short = OLD_OPTIONS[name]
            note = f"option '{name}' is now '{long}' ({short})"
            if note not in notes:
                notes.append(note)
            if short in takes_value:
                out.append(short + value if eq else short)
                skip_value = not eq
            else:
                out.append(arg if eq else short)  # "--direct=x": let click refuse it
            continue
        out.append(arg)
        if arg in takes_value:
            skip_value = True
        elif arg.startswith("-") and not arg.startswith("--") and len(arg) > 1:
            # a cluster of short options: the last one may take the next argument
            for j, ch in enumerate(arg[1:], 1):
                if "-" + ch in takes_value:
                    skip_value = j == len(arg) - 1
                    break
    return out, notes


def _usage_message(exc: click.UsageError) -> str:
    """ddrescue's message for a missing or extra file name, else click's."""
    if isinstance(exc, click.MissingParameter) and isinstance(exc.param, click.Argument):
        if exc.param.name in ("mapfile", "mountpoint") and exc.ctx is not None:
            given = sum(1 for k in ("infile", "outfile", "mapfile") if exc.ctx.params.get(k))
            if given == 3:  # DISK IMG MNT: the mapfile was forgotten, not the mount point
                return (
                    "A mapfile and a mount point must both be specified: "
                    f"{PROG} {exc.ctx.info_name} INFILE OUTFILE MAPFILE MOUNTPOINT"
                )
        return "Both input and output files must be specified."
    if exc.message.startswith("Got unexpected extra argument"):
        return "Too many files."
    return exc.format_message()


class DdrescueCommand(click.Command):
    """A click command whose usage errors exit 1, as ddrescue's do.

    The old long option names of :data:`OLD_OPTIONS` are accepted, each with a note on stderr
    (not with ``-q``) naming the current spelling.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = preview_default(args)  # -P alone is --data-preview=3
        args, notes = rewrite_old_options(self, args)
        try:
            rest = super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:  # exit 1 (not click's 2), with ddrescue's words
            fail(f"{_usage_message(exc)}\nTry '{PROG} {self.name} --help' for more information.")
            raise  # not reached: fail() exits
        if notes and not ctx.params.get("quiet"):
            for note in notes:
                sys.stderr.write(f"{PROG}: {note}\n")
            sys.stderr.flush()
        return rest

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else "")
            raise SystemExit(0) from None
        except click.UsageError as exc:
            fail(f"{exc.format_message()}\nTry '{PROG} rescue --help' for more information.")
        except click.exceptions.Exit as exc:
            raise SystemExit(exc.exit_code) from None
        except click.Abort:
            raise SystemExit(1) from None


class DdfsGroup(click.Group):
    """The ``ddfs`` group: the modules named in :attr:`lazy` are imported when one of their
    commands is first looked up, and a process started by the ``ddfs`` entry point ends
    without the interpreter's last full garbage collection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: command name -> the module that registers it on ``main`` when imported
        self.lazy: dict[str, str] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self.lazy.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(module)
        command = super().get_command(ctx, cmd_name)
        if command is not None and not any(p.name == "show_version" for p in command.params):
            command.params.append(_version_option())  # -V/--version on every command
        return command

    def main(self, args: Any = None, *rest: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if args is not None:  # called from Python (tests): nothing changes
            return super().main(args, *rest, **kwargs)
        try:
            return super().main(args, *rest, **kwargs)
        finally:
            # The process ends next, every file closed (the map and the logs explicitly, std
            # streams by the interpreter). Frozen objects are left out of the collection the
            # interpreter makes while it shuts down: about 12 ms of `ddfs rescue`'s start-up.
            gc.freeze()


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"{PROG}, version {__version__}")
        ctx.exit(0)


def _version_option() -> click.Option:
    """``-V, --version`` for a command (as ``ddrescue -V`` and ``ddrescuelog -V``)."""
    return click.Option(
        ["-V", "--version", "show_version"],
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_show_version,
        help="output version information and exit",
    )


@click.group(cls=DdfsGroup)
@click.version_option(__version__, prog_name="ddfs")
def main() -> None:
    """ddfs: rescue a failing disk the GNU ddrescue way, and use the image while it runs."""
