"""``ddfs map`` and ``ddfs status``: the map as pictures (PNG, SVG, HTML in headless Chromium,
the terminal) with ddrescueview's colours at known cells, and progress per tier with
remaining-time ranges, for a mapfile and for a live mount."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from ddfs.draw.picture import CELL, cell_origin
from engine.map.blockmap import BlockMap
from engine.map.grid import COLOURS, OUTSIDE, make_grid, worst_per_cell
from engine.map.mapfile import parse_mapfile
from engine.metadata.offline import plan_image
from engine.metadata.volume import P3, P4
from engine.progress.figures import Rates, figures, format_range, subtract, tier_ranges
from tests.conftest import run_ddfs
from tests.fsimages import gpt_ext4_disk
from tests.mountproc import live_mount, status, wait_for
from tests.oracle import DDFS, MiB, make_input, parse_map, write_map, write_test_map

#: 64 cells of 16 KiB over 1 MiB: each status in known cells
BLOCKS = [
    (0x00000, 0x40000, "+"),  # cells 0-15
    (0x40000, 0x10000, "-"),  # cells 16-19
    (0x50000, 0x20000, "*"),  # cells 20-27
    (0x70000, 0x10000, "/"),  # cells 28-31
    (0x80000, 0x7F000, "?"),  # cells 32-63 ...
    (0xFF000, 0x00200, "-"),  # ... but cell 63 holds one bad sector
    (0xFF200, 0x00E00, "?"),
]
EXPECT = {0: "+", 15: "+", 16: "-", 19: "-", 20: "*", 27: "*", 28: "/", 31: "/", 32: "?"}
EXPECT.update({62: "?", 63: "-"})


@pytest.fixture
def known_map(tmp_path: Path) -> Path:
    return write_map(tmp_path / "known.map", "0x00080000 ? 1", BLOCKS)


def _bmap(path: Path) -> BlockMap:
    return parse_mapfile(str(path)).bmap


def test_worst_status_per_cell(known_map: Path) -> None:
    grid = make_grid(_bmap(known_map), columns=8, rows=8)
    assert grid.cell_size == 0x4000 and len(grid.cells) == 64
    for cell, st in EXPECT.items():
        assert grid.cells[cell] == st, cell
    # outside a domain: greyed; a cell partly inside shows the statuses inside only
    dom = [(0x4000, 0x46000)]
    cells = worst_per_cell(_bmap(known_map), dom, 0x4000, 64)
    assert cells[0] == OUTSIDE and cells[1] == "+" and cells[17] == "-" and cells[18] == OUTSIDE


def _pixel_status(img: Image.Image, x: int, y: int) -> str:
    rgb = img.getpixel((x + CELL // 2, y + CELL // 2))[:3]
    for st, colour in COLOURS.items():
        if all(abs(a - b) <= 3 for a, b in zip(rgb, colour, strict=True)):
            return st
    return f"?{rgb}"


def test_png_colours(tmp_path: Path, known_map: Path) -> None:
    out = tmp_path / "map.png"
    r = run_ddfs("map", str(known_map), "-o", str(out), "--width", "8", "--rows", "8")
    assert r.returncode == 0, r.stderr
    img = Image.open(out)
    grid = make_grid(_bmap(known_map), columns=8, rows=8)
    for cell, st in EXPECT.items():
        assert _pixel_status(img, *cell_origin(grid, cell)) == st, cell


def test_html_in_chromium(tmp_path: Path, known_map: Path) -> None:
    """The HTML page rendered by headless Chromium shows the same cells."""
    page = tmp_path / "map.html"
    r = run_ddfs("map", str(known_map), "-o", str(page), "--width", "8", "--rows", "8")
    assert r.returncode == 0, r.stderr
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=400,400",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    img = Image.open(shot).convert("RGB")
    grid = make_grid(_bmap(known_map), columns=8, rows=8)
    for cell, st in EXPECT.items():
        assert _pixel_status(img, *cell_origin(grid, cell)) == st, cell
    assert "rescued 262144 B (25.00 %)" in page.read_text()


def test_svg_and_terminal(tmp_path: Path, known_map: Path) -> None:
    out = tmp_path / "map.svg"
    assert run_ddfs("map", str(known_map), "-o", str(out), "--width", "8").returncode == 0
    fills = re.findall(r'width="11" height="11" fill="(#[0-9a-f]{6})"', out.read_text())
    assert len(fills) == 32  # 8 x 4 cells of 32 KiB
    assert fills[8] == "#ff0000" and fills[0] == "#20e020"  # bad in cell 8, finished in 0
    text = run_ddfs("map", str(known_map), "--width", "8", "--rows", "8", "--no-colour").stdout
    rows = text.splitlines()[:8]
    assert rows[0] == "++++++++" and rows[2] == "----****" and rows[3] == "****////"
    assert rows[7] == "???????-"
    colour = run_ddfs("map", str(known_map), "--width", "8", "--colour").stdout
    assert "\x1b[38;2;255;0;0m\u2588" in colour  # bad sector in red


def test_domain_greyed(tmp_path: Path, known_map: Path) -> None:
    dom = write_map(tmp_path / "dom.map", "0 + 1", [(0, 0x80000, "?"), (0x80000, 0x80000, "+")])
    text = run_ddfs(
        "map", str(known_map), "--width", "8", "--rows", "8", "--no-colour", "--domain", str(dom)
    ).stdout
    rows = text.splitlines()[:8]
    assert rows[0] == "........" and rows[4] == "????????" and rows[7] == "???????-"


def test_bad_arguments(tmp_path: Path, known_map: Path) -> None:
    r = run_ddfs("map", str(known_map), "-o", str(tmp_path / "x.gif"))
    assert r.returncode == 1 and "must be a .png, .svg or .html" in r.stderr
    r = run_ddfs("map", str(tmp_path / "missing.map"))
    assert r.returncode == 1 and "does not exist" in r.stderr
    bad = tmp_path / "bad.map"
    bad.write_text("0 ? 1\n0 0x100 +\n0x200 0x100 +\n")
    r = run_ddfs("status", str(bad))
    assert r.returncode == 2 and "line 3" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------------------------- tiers
def test_tier_ranges_and_ranges() -> None:
    assert subtract([(0, 100)], [(10, 20), (30, 40)]) == [(0, 10), (20, 30), (40, 100)]
    bm = BlockMap(1000)
    bm.set_status(0, 100, "+")
    bm.set_status(100, 50, "-")
    bm.set_status(150, 50, "*")
    figs = figures(bm, [("a", [(0, 200)]), ("b", [(200, 1000)])], Rates(10, 100, 0.5), 50)
    a, b = figs
    assert (a.finished, a.bad_sector, a.non_trimmed, a.non_tried) == (100, 50, 50, 0)
    assert a.eta_low == pytest.approx(0.5) and a.eta_high == pytest.approx(0.5)  # 1 read
    assert b.eta_low == pytest.approx(0.5 + 8) and b.eta_high == pytest.approx(0.5 + 8)
    unknown = figures(bm, [("a", [(0, 1000)])], None)[0]
    assert format_range(unknown.eta_low, unknown.eta_high) == "n/a"
    assert format_range(60, None) == "at least 1m"
    assert format_range(5, 7200) == "5s - 2h"
    assert [name for name, _ in tier_ranges(None, [(0, 10)])] == ["all"]


def _gpt_ext4_disk(tmp_path: Path) -> tuple[Path, int]:
    """A 32 MiB GPT disk with one 24 MiB ext4 partition filled with a few files."""
    disk = tmp_path / "disk.img"
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(20):
        (tree / f"f{i}").write_bytes(os.urandom(50_000))
    start, _ = gpt_ext4_disk(disk, tree, 32 * MiB, 1 * MiB, 24 * MiB)
    return disk, start


def test_map_outlines_partitions(tmp_path: Path) -> None:
    disk, start = _gpt_ext4_disk(tmp_path)
    out, mapf = tmp_path / "out.img", tmp_path / "disk.map"
    r = run_ddfs("rescue", "-q", str(disk), str(out), str(mapf))
    assert r.returncode == 0, r.stderr
    png = tmp_path / "m.png"
    r = run_ddfs("map", str(mapf), "--image", str(out), "-o", str(png), "--width", "32")
    assert r.returncode == 0, r.stderr
    grid = make_grid(_bmap(mapf), columns=32)
    first = start // grid.cell_size
    img = Image.open(png).convert("RGB")
    x, y = cell_origin(grid, first)
    assert img.getpixel((x, y + CELL // 2)) == (255, 255, 255)  # the partition's left border
    plan, _ = plan_image(str(out), _bmap(mapf))
    tiers = [("metadata", plan.ranges(P3)), ("used data", plan.ranges(P4, P4))]
    grid = make_grid(_bmap(mapf), columns=32, tiers=tiers)
    assert grid.tiers[(start + 1024) // grid.cell_size] == "metadata"  # the superblock
    assert "used data" in grid.tiers
    colours = {img.getpixel((x, y)) for x in range(img.width) for y in range(22, img.height)}
    assert (255, 0, 255) in colours and (0, 255, 255) in colours  # both tiers outlined


def test_status_of_a_mapfile(tmp_path: Path) -> None:
    """Figures equal the map's (parsed independently); tiers add up to the disk; the rates a
    ddfs rescue keeps in the map give a remaining-time range; a ddrescue map has none."""
    disk, start = _gpt_ext4_disk(tmp_path)
    size = disk.stat().st_size
    bad = [(start + 8 * MiB, 0x2000), (start + 12 * MiB, 0x400)]
    tmap = write_test_map(tmp_path / "t.map", size, bad)
    out, mapf = tmp_path / "out.img", tmp_path / "disk.map"
    r = run_ddfs("rescue", "-q", "-n", "-H", str(tmap), str(disk), str(out), str(mapf))
    assert r.returncode == 0, r.stderr
    r = run_ddfs("status", str(mapf), "--image", str(out), "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    _, blocks = parse_map(mapf)
    for key, ch in (("finished", "+"), ("bad_sector", "-"), ("non_scraped", "/")):
        assert st["bytes"][key] == sum(s for _, s, c in blocks if c == ch), key
    assert [t["name"] for t in st["tiers"]] == ["metadata", "used data", "free space"]
    assert sum(t["size"] for t in st["tiers"]) == size
    assert sum(t["bad_sector"] + t["non_scraped"] for t in st["tiers"]) == sum(
        s for _, s, c in blocks if c in "-/"
    )
    assert st["rates"] is not None and st["rates"]["error_read_seconds"] >= 0
    assert st["filesystems"] and st["filesystems"][0][2] == "ext"
    human = run_ddfs("status", str(mapf), "--image", str(out)).stdout
    assert "metadata" in human and "free space" in human and "rescued" in human
    # a map written by ddrescue: no rates, so no remaining time
    ref = tmp_path / "ref.map"
    subprocess.run(
        ["ddrescue", "-q", "-n", "-H", str(tmap), str(disk), str(tmp_path / "o2"), str(ref)],
        check=True,
    )
    st2 = json.loads(run_ddfs("status", str(ref), "--json").stdout)
    assert st2["rates"] is None and st2["bytes"] == st["bytes"]
    assert "no remaining time" in run_ddfs("status", str(ref)).stdout


@pytest.mark.fuse
def test_status_and_map_of_a_live_mount(tmp_path: Path) -> None:
    """On a mount point: the live map, the image's partitions, the on-demand figures; and
    ``ddfs map --watch`` keeps rewriting a self-refreshing page while the rescue runs."""
    from tests.simdisk import simulated_disk

    disk, _ = _gpt_ext4_disk(tmp_path)
    size = disk.stat().st_size
    write_test_map(tmp_path / "bad.map", size, [(20 * MiB, 0x1000)])
    (tmp_path / "sim").mkdir()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    page = tmp_path / "live.html"
    with (
        simulated_disk(disk, tmp_path / "sim", tmp_path / "bad.map", rate="8Mi") as dev,
        live_mount(dev, tmp_path / "out", tmp_path / "map", mnt, "-q"),
    ):
        wait_for(lambda: (mnt / "p1").exists(), 60, "p1 did not appear")
        with open(mnt / "p1", "rb") as fh:
            fh.read(4096)
        r = run_ddfs("status", str(mnt), "--json")
        assert r.returncode == 0, r.stderr
        st = json.loads(r.stdout)
        assert st["ondemand"] is not None and st["ondemand"]["reads"] >= 1
        assert st["size"] == size and st["tiers"][0]["name"] == "metadata"
        # status.json itself: the tiers with their remaining-time ranges, and the rates
        wait_for(lambda: status(mnt)["tiers"], 30, "no tiers in status.json")
        live = status(mnt)
        assert [t["tier"] for t in live["tiers"]] == ["metadata", "used data", "free space"]
        for t in live["tiers"]:
            assert {"eta_low", "eta_high", "to_read", "finished", "size"} <= set(t)
            if t["eta_low"] is not None and t["eta_high"] is not None:
                assert t["eta_low"] <= t["eta_high"]
        assert "error_read_seconds" in live and "ondemand" in live
        watcher = subprocess.Popen(
            [DDFS, "map", str(mnt), "-o", str(page), "--watch", "0.5"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for(page.exists, 30, "no page")
            first = page.read_text()
            assert '<meta http-equiv="refresh" content="1">' in first
            wait_for(lambda: page.read_text() != first, 30, "the page was not rewritten")
        finally:
            watcher.send_signal(signal.SIGINT)
            try:
                watcher.wait(10)
            except subprocess.TimeoutExpired:
                watcher.kill()
                watcher.wait()
    assert watcher.returncode == 0, watcher.stderr.read() if watcher.stderr else ""


def test_status_of_a_small_file(tmp_path: Path) -> None:
    """A bare file, no filesystem: one tier, all of it."""
    src = make_input(tmp_path / "in", 1 * MiB)
    r = run_ddfs("rescue", "-q", str(src), str(tmp_path / "o"), str(tmp_path / "m"))
    assert r.returncode == 0
    st = json.loads(run_ddfs("status", str(tmp_path / "m"), "--json").stdout)
    assert [t["name"] for t in st["tiers"]] == ["all"] and st["tiers"][0]["pct"] == 100.0


def test_picture_header_legend_scale_and_tooltips(tmp_path: Path, known_map: Path) -> None:
    """Issue 16: the legend fits the picture's width (in rows), the PNG and SVG carry a title
    with the summary and the scale (bytes per cell), and the HTML page gives each cell a
    tooltip and shrinks with a narrower window."""
    from ddfs.draw.picture import _legend_layout, _width, header_height

    grid = make_grid(_bmap(known_map), columns=8, rows=8)
    layout = _legend_layout(_width(grid))
    assert len({y for _, y, *_ in layout}) > 1  # wrapped: 8 columns are narrow
    assert all(x + 20 + 7 * len(name) <= _width(grid) for x, _, name, *_ in layout)
    png_out = tmp_path / "map.png"
    assert run_ddfs("map", str(known_map), "-o", str(png_out), "--width", "8", "--rows", "8")
    img = Image.open(png_out)
    assert img.size == (_width(grid), header_height(grid) + grid.rows * CELL)
    svg_out = tmp_path / "map.svg"
    assert run_ddfs("map", str(known_map), "-o", str(svg_out), "--width", "8").returncode == 0
    text = svg_out.read_text()
    assert "1 cell = 32 KiB" in text and f"ddfs map of {known_map}" in text
    assert "rescued 262144 B (25.00 %)" in text
    page = tmp_path / "map.html"
    assert run_ddfs("map", str(known_map), "-o", str(page), "--width", "8").returncode == 0
    html_text = page.read_text()
    assert "<title>0x0-0x7FFF: finished</title>" in html_text
    assert "<title>0x40000-0x47FFF: bad sector</title>" in html_text
    assert "max-width:100%" in html_text
