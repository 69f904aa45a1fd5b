"""GNU ddrescue 1.27 and ``ddfs rescue`` side by side in test mode: the same reads, map, output.

Every case runs both tools with ``-H TESTMAP --log-reads`` over the same input and asserts the
same exit status, the same final mapfile (status line and blocks), the same read sequence and
the same output bytes (:func:`oracle.assert_same`); ``ddrescuelog -t`` must accept ddfs's map.
The layouts are the experiments of docs/ddrescue-behaviour.md §6 (64 MiB input, one 64 KiB bad
area aligned or not, ~200 or hundreds of scattered bad sectors) under most options, starting
maps that exercise the corner cases of each phase, and seeded random cases on a 4 MiB input.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.oracle import (
    MiB,
    Run,
    assert_same,
    make_input,
    random_scenario,
    run_both,
    run_scenario,
    run_tool,
    scattered_areas,
    write_map,
    write_test_map,
)

SIZE = 64 * MiB
SMALL = 4 * MiB
U = 64 * 1024  # block unit of the hand-made starting maps (SMALL = 64 U)

#: the bad areas of each test map over the 64 MiB input
LAYOUTS = {
    "A1": [(0x2000000, 0x10000)],
    "A2": [(0x2008200, 0x10000)],
    "B": scattered_areas(SIZE, 199, seed=5),
    "B2": scattered_areas(SIZE, 400, seed=7, max_sectors=8, multi=0.5),
    "B4k": scattered_areas(SIZE, 150, seed=11, sector=4096, max_sectors=3, multi=0.2),
}

#: options run on A1, A2 and B
OPTIONS = [
    "",
    "-R",
    "-u",
    "-r2",
    "-r2 -R",
    "-r2 -u",
    "-n",
    "-N",
    "--cpass=1,2",
    "--cpass=0",
    "--cpass=3",
    "--cpass=2-4",
    "--cpass=2 -K0",
    "-K0",
    "-K 1Mi,4Mi",
    "-c16",
    "-i 0x2008000 -s 8Mi",
    "-i 0x2008123 -s 0x800321 -R",
    "-i 1Mi -o 0",
    "-o 3Mi",
]


@pytest.fixture(scope="session")
def oracle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("oracle")


@pytest.fixture(scope="session")
def big_input(oracle_dir: Path) -> Path:
    return make_input(oracle_dir / "in64.bin", SIZE, seed=1)


@pytest.fixture(scope="session")
def small_input(oracle_dir: Path) -> Path:
    return make_input(oracle_dir / "in4.bin", SMALL, seed=3)


@pytest.fixture(scope="session")
def test_maps(oracle_dir: Path) -> dict[str, Path]:
    return {k: write_test_map(oracle_dir / f"{k}.tm", SIZE, v) for k, v in LAYOUTS.items()}


def _run(tmp_path: Path, infile: Path, args: str, **kw: object) -> tuple[Run, Run]:
    """Run both tools with ``args`` and assert they behave the same."""
    ref, got = run_both(tmp_path, infile, args.split(), **kw)
    assert_same(ref, got)
    return ref, got


# ------------------------------------------------------------------------------ §6 layouts
@pytest.mark.parametrize("args", OPTIONS)
@pytest.mark.parametrize("layout", ["A1", "A2", "B"])
def test_layouts(
    tmp_path: Path, big_input: Path, test_maps: dict[str, Path], layout: str, args: str
) -> None:
    _run(tmp_path, big_input, args, test_map=test_maps[layout])


@pytest.mark.parametrize("args", ["", "-R", "-u -r1", "-c16", "-K0 -R", "-N"])
def test_hundreds_of_bad_sectors(
    tmp_path: Path, big_input: Path, test_maps: dict[str, Path], args: str
) -> None:
    _run(tmp_path, big_input, args, test_map=test_maps["B2"])


@pytest.mark.parametrize("args", ["-b 4096", "-b 4096 -R -r1", "-b 4096 -c 4 -u"])
def test_sector_size_4096(
    tmp_path: Path, big_input: Path, test_maps: dict[str, Path], args: str
) -> None:
    _run(tmp_path, big_input, args, test_map=test_maps["B4k"])


@pytest.mark.parametrize(("layout", "reads", "errors"), [("A1", 1152, 129), ("A2", 1280, None)])
def test_read_counts_of_the_spec(
    tmp_path: Path,
    big_input: Path,
    test_maps: dict[str, Path],
    layout: str,
    reads: int,
    errors: int | None,
) -> None:
    """§6: A1 makes 1152 reads (129 failed), A2 1280; the final map is exactly the bad area."""
    ref, got = run_both(tmp_path, big_input, [], test_map=test_maps[layout])
    assert_same(ref, got)
    assert len(got.reads) == reads
    if errors is not None:
        assert sum(1 for line in got.reads if not line.endswith("\t0")) == errors
    pos, size = LAYOUTS[layout][0]
    assert got.map_lines[1:] == [
        f"0x00000000 0x{pos:08X} +",
        f"0x{pos:08X} 0x{size:08X} -",
        f"0x{pos + size:08X} 0x{SIZE - pos - size:08X} +",
    ]


# ------------------------------------------------------------------------------ limits
LIMITS = [
    pytest.param("A1", "-e 0", id="A1-e0"),
    pytest.param("B", "-e 1", id="B-e1"),
    pytest.param("B", "-e +2 -c1 -s 16Mi", id="B-e+2-c1"),
    pytest.param("A1", "-X 2", id="A1-X2"),
    pytest.param("A1", "-e 1", id="A1-e1"),
    pytest.param("A2", "-X 0", id="A2-X0"),
    pytest.param("A1", "-X 128", id="A1-X128"),
    pytest.param("B", "-X 200", id="B-X200"),
    pytest.param(
        "A1",
        "-c1 -e 0 -i 0x1F00000 -s 0x100200",
        id="A1-e0-end-of-copying",
    ),
]


@pytest.mark.parametrize(("layout", "args"), LIMITS)
def test_limits(
    tmp_path: Path, big_input: Path, test_maps: dict[str, Path], layout: str, args: str
) -> None:
    """-e and -X stop with exit 1 and the phase's status char in the map (§2.7)."""
    ref, got = run_both(tmp_path, big_input, args.split(), test_map=test_maps[layout])
    assert ref.returncode == 1
    assert_same(ref, got)
    assert got.map_lines[0].split()[1] != "+"


# ------------------------------------------------------------------------------ -M and -A
@pytest.fixture(scope="session")
def partial_maps(oracle_dir: Path, big_input: Path, test_maps: dict[str, Path]) -> dict[str, Path]:
    """Maps left by ddrescue runs over B that stop short: ``-n`` leaves ``/`` next to ``-``,
    ``-N`` leaves ``*``, ``--cpass=1`` leaves ``?`` and ``*``."""
    out = {}
    for name, args in (("n", "-n"), ("N", "-N"), ("cpass1", "--cpass=1 -N")):
        run = run_tool(
            "ddrescue",
            oracle_dir,
            big_input,
            args.split(),
            test_map=test_maps["B"],
            tag=f"-partial-{name}",
        )
        out[name] = run.mapfile
    return out


@pytest.mark.parametrize(
    ("start", "args"),
    [
        ("N", "-A"),
        ("cpass1", ""),
        ("cpass1", "-R -r1"),
        pytest.param("n", "-M"),
        pytest.param("n", "-M -R"),
        pytest.param("n", "-M -A"),
        ("cpass1", "-A"),
    ],
)
def test_resumed_map_with_retrim_and_try_again(
    tmp_path: Path,
    big_input: Path,
    test_maps: dict[str, Path],
    partial_maps: dict[str, Path],
    start: str,
    args: str,
) -> None:
    _run(tmp_path, big_input, args, test_map=test_maps["B"], premap=partial_maps[start])


# ------------------------------------------------------------------------------ corner cases
def _blocks(*spec: tuple[int, str]) -> list[tuple[int, int, str]]:
    """Consecutive blocks from (size in units of U, status) pairs."""
    out, pos = [], 0
    for units, st in spec:
        out.append((pos, units * U, st))
        pos += units * U
    assert pos == SMALL
    return out


X = 32 * U  # the middle of the small input
MIXED = _blocks(
    (2, "*"), (2, "?"), (2, "+"), (2, "?"), (2, "-"), (2, "?"), (2, "/"), (2, "?"), (48, "+")
)
EDGES = _blocks((2, "?"), (2, "+"), (2, "?"), (2, "*"), (56, "?"))
SANDWICH = _blocks((16, "+"), (2, "?"), (28, "*"), (2, "?"), (16, "+"))
TRIO = [
    (0, X, "+"),
    (X, 512, "-"),
    (X + 512, 512, "*"),
    (X + 1024, 512, "-"),
    (X + 1536, SMALL - X - 1536, "+"),
]
TRIO_AND_SLASH = [
    *TRIO[:4],
    (X + 1536, 0x1000, "+"),
    (X + 0x1600, 0x400, "/"),
    (X + 0x1A00, SMALL - X - 0x1A00, "+"),
]
EIGHT_BAD = [(k * 8 * U + 0x200, 512) for k in range(1, 8)]


def _after_retries() -> list[tuple[int, int, str]]:
    """The finished map of EIGHT_BAD: ``+`` everywhere but the bad sectors."""
    out, pos = [], 0
    for p, n in EIGHT_BAD:
        out += [(pos, p - pos, "+"), (p, n, "-")]
        pos = p + n
    return [*out, (pos, SMALL - pos, "+")]


AFTER_RETRIES = _after_retries()
AFTER_COPY = [(0, 8 * U, "?"), (8 * U, 0x200, "+"), *AFTER_RETRIES[1:]]

CORNERS = [
    # passes 3 and 4 read only ? blocks next to a finished block, or at the map's ends
    pytest.param([(X, U)], None, None, "--cpass=3", id="pass3-fresh-map"),
    pytest.param([(X, U)], "0 + 1", MIXED, "-N -n --cpass=3", id="pass3-neighbours"),
    pytest.param([(X, U)], "0 + 1", MIXED, "-N -n --cpass=4", id="pass4-neighbours"),
    pytest.param([(X, U)], "0 + 1", MIXED, "-N -n --cpass=3 -R", id="pass3-backwards"),
    pytest.param([(X, U)], "0 + 1", EDGES, "-N -n --cpass=3", id="pass3-map-start"),
    pytest.param([(X, U)], "0 + 1", EDGES, "-N -n --cpass=4", id="pass4-map-end"),
    pytest.param([(X, U)], "0 + 1", EDGES, "-N -n --cpass=3 -i 1Ki", id="pass3-domain-cut"),
    pytest.param([(X, U)], "0 + 1", EDGES, "-N -n --cpass=4 -s 0x3F0000", id="pass4-domain-cut"),
    # a resumed pass 3 or 4 judges the whole block, also from mid-block
    pytest.param([(X, U)], f"0x{17 * U + 0x8000:X} ? 3", SANDWICH, "-N -n", id="resume-pass3"),
    pytest.param([(X, U)], f"0x{47 * U:X} ? 4", SANDWICH, "-N -n", id="resume-pass4"),
    # a saved pass above 5 resumes pass 1 at current_pos
    pytest.param([(X, U)], f"0x{X:X} ? 7", [(0, SMALL, "?")], "", id="resume-pass7"),
    # copying resets the pass to 1 (no resume) even if it reads nothing
    pytest.param(
        [(X, U)], "0x1234 + 3", SANDWICH, "-N -n --cpass=3 -i 0x108000 -s 0x4000", id="pass-reset"
    ),
    # a * block between bad sectors becomes / without reads, and is not scraped for that alone
    pytest.param([(X, 1536)], "0 + 1", TRIO, "", id="trim-both-sides-bad"),
    pytest.param([(X, 1536)], "0x1234 ? 3", TRIO_AND_SLASH, "", id="scrape-with-other-slash"),
    pytest.param(
        [(X, 1536)],
        "0x1234 ? 3",
        TRIO,
        "",
        id="trim-both-sides-bad-pass3",
    ),
    # retry resume: parity and position of the saved pass (experiment D)
    pytest.param(
        EIGHT_BAD, f"0x{5 * 8 * U + 0x400:X} - 2", AFTER_RETRIES, "-r1", id="resume-retry-even"
    ),
    pytest.param(
        EIGHT_BAD, f"0x{5 * 8 * U + 0x400:X} - 3", AFTER_RETRIES, "-r2", id="resume-retry-odd"
    ),
    pytest.param(
        EIGHT_BAD,
        f"0x{5 * 8 * U + 0x400:X} - 4",
        AFTER_RETRIES,
        "-r2 -u",
        id="resume-retry-unidirectional",
    ),
    pytest.param(
        EIGHT_BAD, f"0x{60 * U:X} - 2", AFTER_RETRIES, "-r1 -R", id="resume-retry-reverse"
    ),
    pytest.param(
        EIGHT_BAD, f"0x{30 * U:X} - 2", AFTER_COPY, "-r1", id="no-retry-resume-after-copying"
    ),
    # -e counts the bad areas inside the domain only
    pytest.param(
        [(X, 3 * U)],
        "0 + 1",
        [
            (0, 16 * U, "+"),
            (16 * U, 512, "-"),
            (16 * U + 512, 0x1000, "+"),
            (16 * U + 0x1200, 512, "-"),
            (16 * U + 0x1400, SMALL - 16 * U - 0x1400, "?"),
        ],
        "-e 1 -i 0x200000",
        id="bad-areas-in-domain",
    ),
    # -M / -A keep the former borders between blocks that end with the same status
    pytest.param(
        [(10 * U, 512), (18 * U + 0x1000, 512)],
        "0 + 1",
        _blocks((8, "+"), (4, "/"), (4, "-"), (4, "*"), (44, "+")),
        "-M",
        id="retrim-borders",
    ),
    pytest.param(
        [(10 * U, 512), (18 * U + 0x1000, 512)],
        "0 + 1",
        [
            (0, 8 * U + 0x3000, "+"),
            (8 * U + 0x3000, 3 * U, "/"),
            (11 * U + 0x3000, 2 * U, "-"),
            (13 * U + 0x3000, 4 * U, "*"),
            (17 * U + 0x3000, SMALL - 17 * U - 0x3000, "+"),
        ],
        "-M -A",
        id="try-again-borders",
    ),
]


@pytest.mark.parametrize(("bad", "status", "blocks", "args"), CORNERS)
def test_corner_cases(
    tmp_path: Path,
    small_input: Path,
    bad: list[tuple[int, int]],
    status: str | None,
    blocks: list[tuple[int, int, str]] | None,
    args: str,
) -> None:
    test_map = write_test_map(tmp_path / "test.map", SMALL, bad)
    premap = write_map(tmp_path / "start.map", status, blocks) if status and blocks else None
    _run(tmp_path, small_input, args, test_map=test_map, premap=premap)


# ------------------------------------------------------------------------------ random cases
CORE_OPTIONS = [
    "",
    "-R",
    "-u",
    "-r1",
    "-r2",
    "-r2 -R",
    "-N",
    "-n",
    "--cpass=3",
    "--cpass=4",
    "--cpass=2-4",
    "--cpass=1,3,5",
    "--cpass=2,4 -R",
    "-K0",
    "-K0 --cpass=2-5",
    "-c16",
    "-c3",
    "-c1 -r1",
    "-K 128Ki,256Ki",
    "-i 0x100000 -s 0x200000",
    "-i 0x123400 -s 0x1E0000",
    "-R -i 0x100200 -s 0x50000",
    "-i 0x3FF000",
    "-u -R -r2",
    "-b 4096",
    "-b 4096 -R -r1",
    "-b 4096 -c 4",
]
FULL_OPTIONS = [
    *CORE_OPTIONS,
    "-M",
    "-A",
    "-M -A",
    "-M -R",
    "-A -R",
    "-X 5",
    "-X 40",
    "-e 3",
    "-e +1",
    "-e 10",
]


@pytest.mark.parametrize("seed", range(60))
def test_random_cases(tmp_path: Path, small_input: Path, seed: int) -> None:
    sc = random_scenario(seed, SMALL, CORE_OPTIONS)
    assert_same(*run_scenario(tmp_path, small_input, SMALL, sc))


@pytest.mark.parametrize("seed", range(1000, 1040))
def test_random_cases_all_options(tmp_path: Path, small_input: Path, seed: int) -> None:
    """Also limits, -M/-A and byte-aligned maps (subsector join)."""
    sc = random_scenario(seed, SMALL, FULL_OPTIONS, unaligned=True)
    assert_same(*run_scenario(tmp_path, small_input, SMALL, sc))


@pytest.mark.long
@pytest.mark.parametrize("seed", range(5000, 5400))
def test_random_cases_soak(tmp_path: Path, small_input: Path, seed: int) -> None:
    """`make test-long`: 400 more random scenarios with every option of the comparison."""
    sc = random_scenario(seed, SMALL, FULL_OPTIONS, unaligned=seed % 2 == 1)
    assert_same(*run_scenario(tmp_path, small_input, SMALL, sc))
