"""Hypothesis-generated mapfiles, valid and corrupted, for the parser (engine/map/mapfile.py).

Valid maps come in every spelling ddrescue accepts: decimal, hex (either case) and octal
numbers with an optional ``+``, CRLF line ends, blank and comment lines anywhere, leading blanks,
tabs, trailing text, an omitted pass number, a first block that starts late. Each one must parse
to the generated model, round-trip through the writer unchanged, and be accepted by GNU
``ddrescuelog -t`` as well.

Corrupted maps are valid ones with one defect at a known line: a gap or overlap, a bad status
character, a zero or negative size, a missing field, a garbage line, or a broken status line.
The parser must raise :class:`MapfileError` with that line number and ddrescue's message, and
``ddrescuelog -t`` must reject the file at the same line. Run through ``ddfs rescue``,
``ddfs log`` and ``ddfs mount``, a corrupted map gives exit 2 and the line number on one line
of stderr, and the file is left untouched (same bytes, same mtime), with no output file created.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import MapfileError
from engine.map.mapfile import mapfile_text, parse_mapfile_text
from tests.conftest import run_ddfs
from tests.faults import ddrescuelog_accepts, fingerprint

Block = tuple[int, int, str]
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SLOW_FUZZ = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def fmt_int(draw: st.DrawFn, value: int) -> str:
    """``value`` as C ``strtoll`` base 0 reads it: decimal, hex (either case) or octal."""
    kind = draw(st.sampled_from(["dec", "HEX", "hex", "HEX8", "oct"]))
    sign = draw(st.sampled_from(["", "", "", "+"]))
    if kind == "dec":
        return sign + str(value)
    if kind == "HEX":
        return f"{sign}0x{value:X}"
    if kind == "hex":
        return f"{sign}0x{value:x}"
    if kind == "HEX8":
        return f"{sign}0X{value:08X}"
    return sign + ("0" + format(value, "o") if value else "0")


SEP = st.sampled_from([" ", "  ", "\t", " \t "])
LEAD = st.sampled_from(["", "", " ", "\t"])
COMMENT = st.sampled_from(["", "", "# a comment", "   # indented", "#", "   "])
TRAIL_BLOCK = st.sampled_from(["", "", "  # note", " trailing words", "\t# x"])
TRAIL_STATUS = st.sampled_from(["", "", "  # note"])


@dataclass
class Generated:
    """A mapfile text and what it means (or, when corrupted, where it breaks)."""

    lines: list[str]
    status: tuple[int, str, int]
    blocks: list[Block]  # as written (first may start after 0)
    status_line: int  # 1-based physical line numbers
    block_lines: list[int]
    eol: str = "\n"

    @property
    def text(self) -> str:
        return self.eol.join(self.lines) + self.eol


@st.composite
def valid_maps(draw: st.DrawFn) -> Generated:
    lines: list[str] = []

    def comments() -> None:
        for _ in range(draw(st.integers(0, 2))):
            lines.append(draw(COMMENT))

    comments()
    pos = draw(st.integers(0, 1 << 40))
    phase = draw(st.sampled_from("?*/-FG+"))
    passno = draw(st.integers(1, 9))
    omit_pass = passno == 1 and draw(st.booleans())
    sep = draw(SEP)
    status = f"{draw(LEAD)}{fmt_int(draw, pos)}{sep}{phase}"
    if not omit_pass:
        status += f"{draw(SEP)}{passno}"
    lines.append(status + draw(TRAIL_STATUS))
    status_line = len(lines)
    blocks: list[Block] = []
    block_lines: list[int] = []
    at = draw(st.sampled_from([0, 0, 0, 512, 0x10000]))
    for _ in range(draw(st.integers(0, 12))):
        comments()
        size = draw(st.sampled_from([1, 512, 4096, 65536, 0x123400, 1 << 33]))
        size = draw(st.integers(1, size))
        st_char = draw(st.sampled_from("?*/-+"))
        lines.append(
            f"{draw(LEAD)}{fmt_int(draw, at)}{draw(SEP)}{fmt_int(draw, size)}{draw(SEP)}"
            f"{st_char}{draw(TRAIL_BLOCK)}"
        )
        blocks.append((at, size, st_char))
        block_lines.append(len(lines))
        at += size
    comments()
    assert all(len(x) < 120 for x in lines)
    eol = draw(st.sampled_from(["\n", "\n", "\r\n"]))
    return Generated(lines, (pos, phase, passno), blocks, status_line, block_lines, eol)


BAD_STATUS_CHARS = "QxF G0=%!".replace(" ", "")


@st.composite
def corrupted_maps(draw: st.DrawFn) -> tuple[Generated, int, str]:
    """A valid map with one defect; returns it, the line of the defect and the message."""
    gen = draw(valid_maps())
    kinds = ["status", "garbage"]
    if gen.blocks:
        kinds += ["status char", "size", "missing field"]
    if len(gen.blocks) >= 2:
        kinds += ["gap"]
    kind = draw(st.sampled_from(kinds))
    if kind == "status":
        broken = draw(
            st.sampled_from(["x 1", "0x100 Q 1", "0 ? 0", "-1 ? 1", "0x100", "? 0 1", "0 + -2"])
        )
        gen.lines[gen.status_line - 1] = broken
        return gen, gen.status_line, "Bad or missing status line."
    if kind == "garbage":
        at = draw(st.integers(gen.status_line, len(gen.lines)))
        gen.lines.insert(at, draw(st.sampled_from(["hello", "0x100 0x200", "  12", "+ 1 2"])))
        return gen, at + 1, "Bad block line in list."
    i = draw(st.integers(0, len(gen.blocks) - 1))
    line = gen.block_lines[i]
    pos, size, st_char = gen.blocks[i]
    if kind == "status char":
        text = f"0x{pos:X} 0x{size:X} {draw(st.sampled_from(BAD_STATUS_CHARS))}"
        what = "Bad block line in list."
    elif kind == "size":
        bad = draw(st.sampled_from(["0", "-5", "-0x200"]))
        if bad == "0" and pos == 0 and i == 0:
            bad = "-1"  # '0 0 S' alone at position 0 is the one legal empty map
        text = f"0x{pos:X} {bad} {st_char}"
        what = "Bad block line in list."
    elif kind == "missing field":
        text = draw(st.sampled_from([f"0x{pos:X} 0x{size:X}", f"0x{pos:X}"]))
        what = "Bad block line in list."
    else:  # gap or overlap, in a block after the first
        i = draw(st.integers(1, len(gen.blocks) - 1))
        line = gen.block_lines[i]
        pos, size, st_char = gen.blocks[i]
        shift = draw(st.sampled_from([1, 512, -1, -512]))
        shift = shift if pos + shift >= 0 else 1
        text = f"0x{pos + shift:X} 0x{size:X} {st_char}"
        what = "Blocks are not contiguous."
    gen.lines[line - 1] = text
    return gen, line, what


def model_blocks(gen: Generated) -> list[Block]:
    """The blocks a reader makes of ``gen``: the gap before the first is ``?``, merged."""
    blocks = list(gen.blocks)
    if blocks and blocks[0][0] > 0:
        blocks.insert(0, (0, blocks[0][0], "?"))
    out: list[Block] = []
    for p, n, s in blocks:
        if out and out[-1][2] == s:
            out[-1] = (out[-1][0], out[-1][1] + n, s)
        else:
            out.append((p, n, s))
    return out


def merged(blocks: list[Block]) -> list[Block]:
    out: list[Block] = []
    for p, n, s in blocks:
        if out and out[-1][2] == s:
            out[-1] = (out[-1][0], out[-1][1] + n, s)
        else:
            out.append((p, n, s))
    return out


@FUZZ
@given(gen=valid_maps())
def test_valid_maps_parse_round_trip_and_ddrescuelog_agrees(tmp_path: Path, gen: Generated) -> None:
    data = parse_mapfile_text(gen.text)
    assert (data.current_pos, data.current_status, data.current_pass) == gen.status
    assert merged(list(data.bmap)) == model_blocks(gen)
    # round trip: what the writer makes of it reads back the same, and writes the same again
    text = mapfile_text(data.bmap, *gen.status)
    again = parse_mapfile_text(text)
    assert list(again.bmap) == list(data.bmap)
    assert (again.current_pos, again.current_status, again.current_pass) == gen.status
    assert mapfile_text(again.bmap, *gen.status) == text
    path = tmp_path / "valid.map"
    path.write_text(gen.text)
    res = ddrescuelog_accepts(path)
    assert res.returncode == 0, f"ddrescuelog rejects a map ddfs accepts: {res.stderr}"


@FUZZ
@given(case=corrupted_maps())
def test_corrupted_maps_rejected_at_the_line_like_ddrescuelog(
    tmp_path: Path, case: tuple[Generated, int, str]
) -> None:
    gen, line, what = case
    with pytest.raises(MapfileError) as info:
        parse_mapfile_text(gen.text, name="m")
    assert (info.value.line, info.value.what) == (line, what), gen.text
    assert info.value.exit_code == 2
    path = tmp_path / "bad.map"
    path.write_text(gen.text)
    res = ddrescuelog_accepts(path)
    assert res.returncode == 2, res.stdout
    assert f"Error in mapfile, line {line}: {what}" in res.stderr, (res.stderr, gen.text)


@SLOW_FUZZ
@given(case=corrupted_maps())
def test_corrupted_map_exit_2_and_untouched(
    tmp_path: Path, case: tuple[Generated, int, str]
) -> None:
    gen, line, what = case
    infile = tmp_path / "in"
    if not infile.exists():
        infile.write_bytes(os.urandom(1 << 16))
    path = tmp_path / "bad.map"
    path.write_text(gen.text)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # an mtime a rewrite could not keep
    before = fingerprint(path)
    out = tmp_path / "out"
    mnt = tmp_path / "mnt"
    mnt.mkdir(exist_ok=True)
    for argv in (
        ("rescue", str(infile), str(out), str(path)),
        ("log", "-t", str(path)),
        ("mount", str(infile), str(out), str(path), str(mnt)),
    ):
        res = run_ddfs(*argv)
        assert res.returncode == 2, (argv, res.stderr)
        assert res.stderr == f"ddfs: {path}: Error in mapfile, line {line}: {what}\n"
        assert fingerprint(path) == before, f"ddfs {argv[0]} changed the mapfile"
        assert not out.exists()
        assert sorted(os.listdir(tmp_path)) == ["bad.map", "in", "mnt"]
        assert not os.listdir(mnt)


def test_generator_covers_every_defect() -> None:
    """The corrupted-map strategy reaches every kind of defect (so the fuzz tests do)."""
    seen: set[str] = set()

    @settings(max_examples=300, deadline=None)
    @given(case=corrupted_maps())
    def collect(case: tuple[Generated, int, str]) -> None:
        seen.add(case[2])

    collect()
    assert seen == {
        "Bad or missing status line.",
        "Bad block line in list.",
        "Blocks are not contiguous.",
    }


def test_ddrescuelog_is_installed() -> None:
    res = subprocess.run(["ddrescuelog", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and "1.27" in res.stdout
