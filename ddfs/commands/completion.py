"""``ddfs completion bash|zsh|fish``: the shell completion script of ``ddfs`` (click's), to be
sourced from the shell's start-up file, e.g. ``eval "$(ddfs completion bash)"`` in
``~/.bashrc`` or ``ddfs completion fish > ~/.config/fish/completions/ddfs.fish``."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from ddfs.commands.common import fail, main


@main.command("completion", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish)."""
    cls = get_completion_class(shell)
    if cls is None:  # not reached: click knows the three
        fail(f"No completion for {shell}.")
        return
    ctx = click.get_current_context()
    root = ctx.find_root()
    click.echo(cls(root.command, {}, "ddfs", "_DDFS_COMPLETE").source())
