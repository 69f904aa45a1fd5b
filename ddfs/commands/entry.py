"""The ``ddfs`` entry point. A plain ``ddfs rescue`` command line (one that
:func:`ddfs.commands.rescue_table.parse_fast` reads) starts the rescue at once, without
importing click and the other commands; every other command line goes to the click group
(:func:`ddfs.commands.cli.main`), which parses, helps and refuses as usual.
"""

from __future__ import annotations

import gc
import sys


def main() -> None:
    """Run ``ddfs`` with ``sys.argv``."""
    if sys.argv[1:2] == ["rescue"]:
        from ddfs.commands.rescue_table import parse_fast

        parsed = parse_fast(sys.argv[2:])
        if parsed is not None:
            from ddfs.commands.rescue import rescue_main

            files, kw = parsed
            try:
                rescue_main(files[0], files[1], files[2] if len(files) > 2 else None, kw)
            finally:
                gc.freeze()  # as the click group does: no last full collection at exit
    from ddfs.commands.cli import main as click_main

    click_main()
