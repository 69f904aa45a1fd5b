"""``ddfs domain``: write the metadata plan as a ddrescue domain mapfile (for ``ddrescue -m``).

The planner reads through the engine exactly as ``ddfs rescue`` would (what it reads is rescued
into OUTFILE and recorded in MAPFILE), then the chosen tiers are written as ``+`` blocks of a
domain mapfile, everything else ``?``. A GNU ddrescue user can then run
``ddrescue -m DOMAIN.map INFILE OUTFILE MAPFILE`` to rescue those areas first, the way
ddru_ntfsbitmap is used for NTFS, for every filesystem ddfs knows. With ``--path``, the domain
is the files and folders named (:mod:`engine.damage.files`), for the same use.
"""

from __future__ import annotations

import sys

from ddfs.commands.common import fail
from engine.errors import DdfsError, Stop
from engine.map.blockmap import BlockMap
from engine.map.mapfile import format_header, iter_mapfile_text, save_mapfile
from engine.map.ranges import merge
from engine.metadata.volume import P3, P4
from engine.ondemand.metadata_first import metadata_first, plan_summary
from engine.options import RescueOptions
from engine.rescue.builder import prepare

TIERS = {"metadata": (0, P3), "used": (P4, P4), "all": (0, P4)}


def run_domain(
    infile: str, outfile: str, mapfile: str, domain_path: str, tier: str, opts: RescueOptions
) -> int:
    """Plan, save the rescue map, write the domain mapfile; return the exit status."""
    try:
        rescuer, _ = prepare(infile, outfile, mapfile, opts)
    except DdfsError as exc:
        fail(exc.message, exc.exit_code)
    try:
        plan = metadata_first(rescuer)
    except (DdfsError, Stop) as exc:
        rescuer.save(final=True)
        fail(str(exc))
    finally:
        rescuer.close()
    rescuer.save(final=True)
    rescuer.source.close()
    rescuer.output.close()
    if plan is None:
        fail("No partition table or known filesystem found; no domain written.")
    lo, hi = TIERS[tier]
    size = rescuer.map.bmap.end
    dom = BlockMap(size)
    if opts.first:  # --path: the named files and folders
        ranges = merge(span for req in rescuer.first_requests for span in req.spans)
        tier = "path " + " ".join(opts.first)
    else:
        ranges = plan.ranges(hi, lo)
    for start, end in ranges:
        dom.set_status(start, min(end, size) - start, "+")
    header = format_header(" ".join(sys.argv), None, None, f"Domain: tier {tier}")
    save_mapfile(domain_path, iter_mapfile_text(dom, 0, "+", 1, header))
    if not opts.quiet:
        print(plan_summary(plan))
        print(
            f"{domain_path}: {dom.size_of('+')} bytes in {dom.count_of('+')} area(s) (tier {tier})"
        )
        for note in plan.notes:
            print(f"note: {note}")
    return 0
