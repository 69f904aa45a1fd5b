"""``ddfs map`` (the map as a picture: PNG, SVG, a self-refreshing HTML page, or coloured blocks
in the terminal) and ``ddfs status`` (ddrescue's figures, progress per tier with a remaining-time
range, and a live mount's on-demand figures), for a mapfile or a ``ddfs mount`` point."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from ddfs.commands.common import fail, main
from engine.errors import DdfsError
from engine.map.blockmap import BAD_SECTOR, FINISHED, NON_SCRAPED, NON_TRIED, NON_TRIMMED, BlockMap
from engine.map.mapfile import PHASE_NAMES, MapData, parse_mapfile
from engine.numbers import format_size

if TYPE_CHECKING:  # the planner and the pictures load only when a command runs
    from engine.map.grid import Grid
    from engine.metadata.partitions import Partition
    from engine.metadata.volume import Plan
    from engine.progress.figures import Rates, TierFigures


@dataclass
class Target:
    """What a command looks at: a mapfile, and the image and mount status when known."""

    mapfile: str
    image: str | None = None
    mount_status: dict[str, Any] | None = None
    data: MapData = field(default_factory=MapData)


def resolve(where: str, image: str | None) -> Target:
    """A mapfile, or a ``ddfs mount`` point (its ``mapfile``, ``image`` and ``status.json``).

    Raises:
        DdfsError: nothing readable there (exit 1), or a malformed mapfile (exit 2).
    """
    if os.path.isdir(where):
        mapfile = os.path.join(where, "mapfile")
        if not os.path.exists(mapfile):
            raise DdfsError(f"{where}: Not a ddfs mount point (no 'mapfile' in it).")
        with open(os.path.join(where, "status.json"), encoding="utf-8") as fh:
            status = json.load(fh)
        target = Target(mapfile, image or os.path.join(where, "image"), status)
    else:
        if not os.path.exists(where):
            raise DdfsError(f"{where}: Mapfile does not exist or is not readable.")
        target = Target(where, image)
    if target.image is not None and not os.path.exists(target.image):
        raise DdfsError(f"{target.image}: Image does not exist or is not readable.")
    target.data = parse_mapfile(target.mapfile)
    return target


def _plan(target: Target) -> tuple[Plan | None, list[Partition]]:
    if target.image is None:
        return None, []
    from engine.metadata.offline import plan_image

    plan, parts = plan_image(target.image, target.data.bmap)
    if not plan.filesystems and len(plan.areas) <= 2:
        return None, parts
    return plan, parts


def _domain(path: str | None) -> list[tuple[int, int]] | None:
    if path is None:
        return None
    if not os.path.exists(path):
        raise DdfsError(f"{path}: Domain mapfile does not exist or is not readable.")
    bm = parse_mapfile(path).bmap
    return [(s, e) for s, e, st in bm.blocks_from(0) if st == FINISHED]


# ---------------------------------------------------------------------------------- map
@main.command("map")
@click.argument("mapfile", metavar="MAPFILE|MOUNTPOINT")
@click.option("-o", "--output", metavar="FILE", help="write FILE.png, FILE.svg or FILE.html")
@click.option("--domain", metavar="DOMAIN.map", help="grey out what is outside its + blocks")
@click.option("--width", default=64, show_default=True, help="cells per row")
@click.option("--rows", type=int, default=None, help="rows of cells [width / 2]")
@click.option("--image", metavar="IMAGE", help="the image: outline partitions and filesystem tiers")
@click.option("--watch", type=float, default=0, help="redraw every N seconds until Ctrl-C")
@click.option("--colour/--no-colour", default=None, help="terminal colours [when a tty]")
def map_command(
    mapfile: str,
    output: str | None,
    domain: str | None,
    width: int,
    rows: int | None,
    image: str | None,
    watch: float,
    colour: bool | None,
) -> None:
    """Draw MAPFILE (or a mount's live map) as ddrescueview does: a grid of cells coloured by
    the worst status inside each; with -o a PNG, SVG or HTML file (the HTML page reloads
    itself every --watch seconds while ddfs map rewrites it)."""
    if width < 1 or (rows is not None and rows < 1):
        fail("--width and --rows must be at least 1.")
    kind = None
    if output is not None:
        kind = os.path.splitext(output)[1].lower().lstrip(".")
        if kind not in ("png", "svg", "html"):
            fail(f"{output}: The picture must be a .png, .svg or .html file.")
    try:
        dom = _domain(domain)
        while True:
            target = resolve(mapfile, image)
            plan, parts = _plan(target)
            grid = _grid(target, plan, parts, width, rows, dom)
            _draw(target, plan, grid, output, kind, watch, colour)
            if not watch:
                return
            time.sleep(watch)
    except DdfsError as exc:
        fail(exc.message, exc.exit_code)
    except KeyboardInterrupt:
        raise SystemExit(0) from None


def _grid(
    target: Target,
    plan: Plan | None,
    parts: list[Partition],
    width: int,
    rows: int | None,
    dom: list[tuple[int, int]] | None,
) -> Grid:
    """The cells of the picture, with the partitions outlined and the tiers marked."""
    from engine.map.grid import make_grid
    from engine.metadata.volume import P3, P4

    return make_grid(
        target.data.bmap,
        width,
        rows,
        dom,
        [(p.start, p.end, f"p{p.number}") for p in parts],
        None
        if plan is None
        else [("metadata", plan.ranges(P3)), ("used data", plan.ranges(P4, P4))],
    )


def _draw(
    target: Target,
    plan: Plan | None,
    grid: Grid,
    output: str | None,
    kind: str | None,
    watch: float,
    colour: bool | None,
) -> None:
    """Draw ``grid`` once: on the terminal (``kind`` None) or into ``output``."""
    from ddfs.draw import picture as mappicture

    title = f"ddfs map of {target.mapfile}"
    if kind is None:
        use_colour = sys.stdout.isatty() if colour is None else colour
        if watch and use_colour:
            sys.stdout.write("\x1b[H\x1b[2J")
        sys.stdout.write(mappicture.terminal(grid, use_colour))
        sys.stdout.write(summary_line(target.data) + "\n")
        sys.stdout.flush()
    elif kind == "png":
        summary = summary_line(target.data)
        _atomic(output, lambda p, g=grid: mappicture.png(g, p, title, summary))  # type: ignore[arg-type]
    else:
        if kind == "svg":
            text = mappicture.svg(grid, title, summary_line(target.data))
        else:
            text = mappicture.html_page(grid, title, status_lines(target, plan), int(watch + 0.999))
        _atomic(output, lambda p, t=text: _write(p, t))  # type: ignore[arg-type]


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def _atomic(path: str, write: Any) -> None:
    """Write through a temporary file and rename, so a browser never sees half a page."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise DdfsError(f"{path}: Can't write the picture: {exc.strerror}") from None


def summary_line(data: MapData) -> str:
    bm = data.bmap
    size = bm.end or 1
    done = bm.size_of(FINISHED)
    return (
        f"size {format_size(bm.end)}B, rescued {format_size(done)}B "
        f"({100 * done / size:.2f} %), bad-sector {format_size(bm.size_of(BAD_SECTOR))}B, "
        f"bad areas {bm.count_of(BAD_SECTOR)}"
    )


# ---------------------------------------------------------------------------------- status
def rates_of(target: Target) -> Rates | None:
    """The rates a live mount reports, else those the rescuer keeps in the mapfile."""
    from engine.map.header import header_comments
    from engine.progress.figures import Rates

    st = target.mount_status
    if st is not None:
        return Rates(
            float(st.get("average_rate", 0.0)),
            float(st.get("current_rate", 0.0)),
            float(st.get("error_read_seconds", 0.0)),
        )
    for line in header_comments(target.mapfile):
        found = Rates.parse(line)
        if found is not None:
            return found
    return None


def collect(target: Target, plan: Plan | None) -> dict[str, Any]:
    """Everything ``ddfs status`` shows, as the JSON structure of ``--json``."""
    from engine.progress.figures import figures, tier_ranges

    data = target.data
    bm: BlockMap = data.bmap
    rates = rates_of(target)
    figs: list[TierFigures] = figures(bm, tier_ranges(plan, [(0, bm.end)]), rates)
    sizes = {
        "finished": bm.size_of(FINISHED),
        "non_tried": bm.size_of(NON_TRIED),
        "non_trimmed": bm.size_of(NON_TRIMMED),
        "non_scraped": bm.size_of(NON_SCRAPED),
        "bad_sector": bm.size_of(BAD_SECTOR),
    }
    ondemand = target.mount_status.get("ondemand") if target.mount_status else None
    return {
        "mapfile": target.mapfile,
        "image": target.image,
        "size": bm.end,
        "current_status": data.current_status,
        "phase": PHASE_NAMES.get(data.current_status, data.current_status),
        "current_pass": data.current_pass,
        "current_pos": data.current_pos,
        "bytes": sizes,
        "pct_rescued": round(100 * sizes["finished"] / bm.end, 2) if bm.end else 0.0,
        "bad_areas": bm.count_of(BAD_SECTOR),
        "rates": None if rates is None else rates.__dict__,
        "tiers": [f.as_dict() for f in figs],
        "filesystems": [] if plan is None else [list(f) for f in plan.filesystems],
        "ondemand": ondemand,
        "first": target.mount_status.get("first", []) if target.mount_status else [],
    }


def status_lines(target: Target, plan: Plan | None) -> list[str]:
    """The human report, one line each."""
    from engine.progress.figures import format_range

    info = collect(target, plan)
    b = info["bytes"]

    def sz(n: int) -> str:
        return format_size(n) + "B"

    out = [
        f"{target.mapfile}: {info['phase']}, pass {info['current_pass']},"
        f" position 0x{info['current_pos']:08X}",
        f"size {sz(info['size'])}, rescued {sz(b['finished'])} ({info['pct_rescued']:.2f} %),"
        f" non-tried {sz(b['non_tried'])}, non-trimmed {sz(b['non_trimmed'])},"
        f" non-scraped {sz(b['non_scraped'])}, bad-sector {sz(b['bad_sector'])},"
        f" bad areas {info['bad_areas']}",
    ]
    r = info["rates"]
    if r is None:
        out.append("rates: not known (a map written by ddrescue): no remaining time")
    else:
        per = f"{r['error_read_seconds']:.3f} s" if r["error_read_seconds"] else "not measured"
        out.append(
            f"rates: current {format_size(r['current'], limit=99_999)}B/s, average "
            f"{format_size(r['average'], limit=99_999)}B/s, one failed read {per}"
        )
    for t in info["tiers"]:
        left = "done" if not t["to_read"] else format_range(t["eta_low"], t["eta_high"])
        out.append(
            f"  {t['name']:<11} {sz(t['size']):>10}  {t['pct']:6.2f} % rescued,"
            f" bad {sz(t['bad_sector'])}, left {sz(t['size'] - t['finished'])}; time: {left}"
        )
    od = info["ondemand"]
    if od:
        out.append(
            f"on demand: {od.get('reads', 0)} reads, {od.get('served', 0)} served from the"
            f" source, {od.get('eio', 0)} EIO, {od.get('timeouts', 0)} timeouts,"
            f" {len(od.get('queue', []))} queued"
        )
    for r in info["first"]:  # --first requests of a mount
        state = (
            f"{r['done']} done, {r['damaged']} damaged, {r['pending']} pending of"
            f" {r['files']} files"
            if r["found"]
            else "not found"
        )
        out.append(f"first {r['request']}: {state}")
    return out


@main.command("status")
@click.argument("where", metavar="MAPFILE|MOUNTPOINT")
@click.option("--image", metavar="IMAGE", help="the image, for figures per tier")
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
def status_command(where: str, image: str | None, as_json: bool) -> None:
    """Print a rescue's progress once: ddrescue's figures, then per tier (metadata, used data,
    free space) how much is rescued and a remaining-time range, and a mount's on-demand
    figures. Times are ranges: the low end if the rest reads well, the high end if every
    failed area has to be read sector by sector at the measured cost of a failed read."""
    try:
        target = resolve(where, image)
        plan, _ = _plan(target)
        if as_json:
            sys.stdout.write(json.dumps(collect(target, plan), indent=2) + "\n")
        else:
            sys.stdout.write("\n".join(status_lines(target, plan)) + "\n")
    except DdfsError as exc:
        fail(exc.message, exc.exit_code)
    except (OSError, ValueError) as exc:
        fail(f"{where}: {exc}")
