"""Manual pages generated from the commands' own help: ``ddfs.1`` (the command list) and one
``ddfs-COMMAND.1`` per command (its usage, description and every option with its help), so the
pages never drift from ``--help``. ``make install`` writes them to
``/usr/local/share/man/man1`` (``man ddfs``, ``man ddfs-rescue``).

Run: ``python -m ddfs.commands.manpage DIRECTORY``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from engine import __version__

DATE = "2026-12"


def _roff(text: str) -> str:
    """Escape text for roff: backslashes, and a leading dot or quote on a line."""
    out = []
    for line in text.replace("\\", "\\e").split("\n"):
        out.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(out)


def _header(name: str, summary: str) -> list[str]:
    return [
        f'.TH {name.upper()} 1 "{DATE}" "ddfs {__version__}" "User Commands"',
        ".SH NAME",
        f"{name} \\- {_roff(summary)}",
    ]


def command_page(name: str, command: click.Command, ctx: click.Context) -> str:
    """The page of one command."""
    summary = (command.get_short_help_str(limit=200) or name).rstrip(".")
    lines = _header(f"ddfs-{name}", summary)
    sub = click.Context(command, info_name=f"ddfs {name}", parent=ctx)
    usage = " ".join(command.collect_usage_pieces(sub))
    lines += [".SH SYNOPSIS", f".B ddfs {name}", _roff(usage)]
    if command.help:
        lines += [".SH DESCRIPTION", _roff(click.unstyle(command.help).replace("\b\n", ""))]
    records = [
        p.get_help_record(sub) for p in command.get_params(sub) if isinstance(p, click.Option)
    ]
    options = [r for r in records if r is not None]
    if options:
        lines.append(".SH OPTIONS")
        for flags, text in options:
            lines += [".TP", f".B {_roff(flags)}", _roff(text)]
    lines += [".SH SEE ALSO", "ddfs(1), ddrescue(1), ddrescuelog(1)"]
    return "\n".join(lines) + "\n"


def main_page(group: click.Group, ctx: click.Context) -> str:
    """``ddfs.1``: what ddfs is and its commands."""
    lines = _header("ddfs", "rescue a failing disk the GNU ddrescue way, and use the image")
    lines += [".SH SYNOPSIS", ".B ddfs", "COMMAND [OPTIONS] ARGUMENTS..."]
    lines += [".SH DESCRIPTION", _roff(click.unstyle(group.help or ""))]
    lines.append(".SH COMMANDS")
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is not None:
            lines += [".TP", f".B ddfs {name}", _roff(command.get_short_help_str(limit=200))]
            lines.append(f"See ddfs-{name}(1).")
    lines += [".SH SEE ALSO", "ddrescue(1), ddrescuelog(1); docs/guide.md in the sources"]
    return "\n".join(lines) + "\n"


def write_pages(directory: Path) -> list[Path]:
    """Write ``ddfs.1`` and every ``ddfs-COMMAND.1`` into ``directory``."""
    from ddfs.commands.cli import main

    directory.mkdir(parents=True, exist_ok=True)
    ctx = click.Context(main, info_name="ddfs")
    written = [directory / "ddfs.1"]
    written[0].write_text(main_page(main, ctx), encoding="utf-8")
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        if command is None:
            continue
        page = directory / f"ddfs-{name}.1"
        page.write_text(command_page(name, command, ctx), encoding="utf-8")
        written.append(page)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m ddfs.commands.manpage DIRECTORY")
    for path in write_pages(Path(sys.argv[1])):
        print(path)
