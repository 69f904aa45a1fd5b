"""``ddfs rescue`` command lines read without click (:func:`parse_fast`) give exactly what click
gives, and every other command line is left to click (with its messages)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import click
from hypothesis import given, settings
from hypothesis import strategies as st

from ddfs.commands.cli import rescue
from ddfs.commands.rescue_table import COUNT, FLAG, OPTIONS, VERBOSE, Spec, parse_fast

SPECS = [*OPTIONS, VERBOSE]
VALUES = ["1", "0x10", "-1", "", "=x", "1Mi", "output", "a,b", "-q", "--", "-"]
FILES = ["in", "out", "map", "-", "x=y"]


def click_parse(args: list[str]) -> dict[str, Any] | None:
    """click's keywords for ``ddfs rescue ARGS``, or None when click refuses them."""
    try:
        ctx = rescue.make_context("rescue", list(args))
    except (click.exceptions.Exit, SystemExit, click.UsageError):
        return None
    return dict(ctx.params)


def fast_parse(args: list[str]) -> dict[str, Any] | None:
    parsed = parse_fast(args)
    if parsed is None:
        return None
    files, kw = parsed
    mapfile = files[2] if len(files) > 2 else None
    return {"infile": files[0], "outfile": files[1], "mapfile": mapfile, **kw}


@st.composite
def option_tokens(draw: st.DrawFn) -> list[str]:
    spec: Spec = draw(st.sampled_from(SPECS))
    name = draw(st.sampled_from(spec.names))
    if spec.kind in (FLAG, COUNT):
        if name.startswith("--"):
            return [name]
        others = [s.names[0] for s in SPECS if s.kind == FLAG and not s.names[0].startswith("--")]
        more = draw(st.lists(st.sampled_from(others), max_size=2))
        return [name + "".join(m[1:] for m in more)]
    value = draw(st.sampled_from(VALUES))
    form = draw(st.sampled_from(["separate", "attached"]))
    if form == "separate":
        return [name, value]
    return [f"{name}={value}" if name.startswith("--") else name + value]


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    parts: list[list[str]] = draw(st.lists(option_tokens(), max_size=6))
    files = draw(st.lists(st.sampled_from(FILES), min_size=1, max_size=4))
    args: list[str] = []
    for i, f in enumerate(files):
        args += [tok for part in parts[i :: len(files)] for tok in part] + [f]
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(args)))
        args.insert(cut, "--")
    return args


@settings(max_examples=600, deadline=None)
@given(command_lines())
def test_what_parse_fast_accepts_click_accepts_alike(args: list[str]) -> None:
    fast = fast_parse(args)
    if fast is not None:
        assert click_parse(args) == fast, args


def test_plain_command_lines_are_read_without_click() -> None:
    for args in (
        ["-q", "in", "out", "map"],
        ["-f", "-n", "in", "out", "map"],
        ["-vv", "-b2048", "-r", "-1", "--cpass=1,2", "in", "out"],
        ["-d", "-m", "dom1", "--mapfile-interval", "10,300", "in", "out", "map"],
        ["-P", "in", "out", "map", "--log-reads", "log"],
        ["in", "out", "map", "-s1Mi", "-K", "1Mi,8Mi", "--schedule", "ddrescue-1.27"],
    ):
        assert fast_parse(args) is not None, args
        assert fast_parse(args) == click_parse(args), args


def test_everything_else_is_left_to_click() -> None:
    for args in (
        ["--help"],
        ["-h", "in", "out"],
        ["-V"],
        ["in"],
        ["in", "out", "map", "extra"],
        ["--siz=1", "in", "out"],
        ["--no-split", "in", "out", "map"],  # an old name: click rewrites it, with a note
        ["--force=yes", "in", "out"],
        ["in", "out", "-s"],
        ["-Y", "in", "out"],
    ):
        assert parse_fast(args) is None, args


def test_a_plain_rescue_imports_no_click(tmp_path: Any) -> None:
    """``ddfs`` runs a plain rescue without click, and a refused one with it."""
    (tmp_path / "in").write_bytes(b"\1" * 4096)
    code = (
        "import sys, atexit\n"
        "atexit.register(lambda: print('click' in sys.modules, file=sys.stderr))\n"
        "from ddfs.commands.entry import main\n"
        "sys.argv = ['ddfs', *sys.argv[1:]]\n"
        "main()\n"
    )
    exe = sys.executable
    res = subprocess.run(
        [exe, "-c", code, "rescue", "-q", *(str(tmp_path / n) for n in ("in", "out", "map"))],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == "False"
    assert (tmp_path / "out").read_bytes() == b"\1" * 4096
    res = subprocess.run(
        [exe, "-c", code, "rescue", "--typo", "a", "b"], capture_output=True, text=True
    )
    assert res.returncode == 1
    assert "No such option '--typo'." in res.stderr
    assert res.stderr.strip().endswith("True")


def test_a_plain_rescue_loads_no_scanner_and_no_filesystem_module(tmp_path: Any) -> None:
    """The start-up of issue 13 stays short: without ``--first``, ``--hash``,
    ``--notify-command`` or a filesystem on the disk, neither ``ddfs report``'s scanners, nor a
    filesystem planner, nor ``subprocess`` is imported; nor ``socket`` and ``hashlib`` for the
    mapfile's lock (they cost 6 ms)."""
    (tmp_path / "in").write_bytes(os.urandom(1 << 16))
    code = (
        "import sys, atexit\n"
        "heavy = ('engine.damage', 'engine.metadata.ext', 'engine.metadata.ntfs',"
        " 'engine.metadata.fat', 'engine.metadata.exfat', 'engine.metadata.xfs', 'subprocess',"
        " 'socket', 'hashlib')\n"
        "atexit.register(lambda: print(sorted(m for m in sys.modules if m.startswith(heavy)),"
        " file=sys.stderr))\n"
        "from ddfs.commands.entry import main\n"
        "sys.argv = ['ddfs', *sys.argv[1:]]\n"
        "main()\n"
    )
    files = [str(tmp_path / n) for n in ("in", "out", "map")]
    res = subprocess.run(
        [sys.executable, "-c", code, "rescue", "-q", *files], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == "[]"
