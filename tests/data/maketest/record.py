"""Record GNU ddrescuelog 1.30's ``--make-test`` (``-H``) output for tests/test_log_maketest.py.

Usage (from the repository root; README.md says which build of 1.30):

    python3 tests/data/maketest/record.py /work/ddr130/bin/ddrescuelog

Each case runs ``ddrescuelog ARGS`` (ARGS split as the shell does) in an empty temporary
directory (where OUT is the output name; some cases first put a file there) and records its
exit status and the first line of its stderr in ``cases.json``; the map it wrote (to OUT, or to
stdout for ``-``) is kept as ``NAME.map.gz`` (``gzip -9 -n``), or, when it is big, as the
sha256 and count of its lines after the first three (the lines the test compares).
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIG = {"f_max_cylinders", "f_40k", "ff_big"}  # recorded as a hash of their lines
PRE = {
    "map": "0 + 1\n0 0x1000 +\n",
    "garbage": "not a mapfile\n",
}

F_MAPS = {
    "f_min_bad_first": "-H 40:2:8:F:0 OUT",
    "f_min_bad_last": "-H 40:2:8:F:1 OUT",
    "f_4h_bad_middle": "-H 50:4:100:F:1 OUT",
    "f_8h_bad_last": "-H 64:8:63:F:7 OUT",
    "f_3h_bad_middle_4k": "-b 4096 -H 48:3:8:F:1 OUT",
    "f_1h": "-H 45:1:16:F:0 OUT",
    "f_hex_k_octal": "-H 0x30:3:1k:F:02 OUT",
    "f_groups_long_option": "--make-test=1_000:2:010:F:1 OUT",
    "f_unit_suffix_plus": "-H 40B:+2:8B:F:0 OUT",
    "f_stdout": "-H 41:3:9:F:2 -",
    "f_force": "-f -H 40:2:8:F:1 OUT",
    "f_max_cylinders": "-H 1000000:2:8:F:1 OUT",
    "f_40k": "-H 40k:2:8:F:0 OUT",
}
FF_MAPS = {
    "ff_doc_4h": "-H 6000:4:1200-600,60:FF:2 OUT",
    "ff_doc_8h": "-H 2500:8:1400-700,40:FF:5 OUT",
    "ff_default_t": "-H 100:2:500-400:FF:0 OUT",
    "ff_rising": "-H 80:3:100-200:FF:1 OUT",
    "ff_t_min": "-H 64:5:300-200,8:FF:4 OUT",
    "ff_last_zone_short": "-H 50:4:300-100,8:FF:3 OUT",
    "ff_two_zones": "-H 40:2:8-16,39:FF:0 OUT",
    "ff_default_t_1": "-H 40:6:8-100:FF:5 OUT",
    "ff_1h": "-H 40:1:50-60,10:FF:0 OUT",
    "ff_bs1": "-b 1 -H 60:3:9-8,8:FF:1 OUT",
    "ff_8h_bad_first": "-H 96:8:256-128,12:FF:0 OUT",
    "ff_7h_bad_middle": "-H 70:7:64-32:FF:3 OUT",
    "ff_big": "-H 1000000:4:16-8,8:FF:1 OUT",
}
ERRORS = {
    "err_c_low": "-H 39:2:8:F:0 OUT",
    "err_h_0": "-H 40:0:8:F:0 OUT",
    "err_h_257": "-H 40:257:8:F:0 OUT",
    "err_s_low": "-H 40:2:7:F:0 OUT",
    "err_s_high": "-H 40:2:10001:F:0 OUT",
    "err_head_high": "-H 40:2:8:F:2 OUT",
    "err_head_negative": "-H 40:2:8:F:-1 OUT",
    "err_head_missing": "-H 40:2:8:F: OUT",
    "err_s2_same": "-H 40:2:8-8:FF:0 OUT",
    "err_f_with_s2": "-H 40:2:8-9:F:0 OUT",
    "err_ff_without_s2": "-H 40:2:8:FF:0 OUT",
    "err_t_low": "-H 40:2:8-16,7:FF:0 OUT",
    "err_t_high": "-H 40:2:8-16,41:FF:0 OUT",
    "err_t_missing": "-H 40:2:8-16,:FF:0 OUT",
    "err_order": "-H 40:2:8:G:0 OUT",
    "err_order_fff": "-H 40:2:8:FFF:0 OUT",
    "err_trailing": "-H 40:2:8:F:0: OUT",
    "err_short": "-H 40:2:8 OUT",
    "err_not_a_number": "-H x OUT",
    "err_multiplier_K": "-H 40K:2:8:F:0 OUT",
    "err_multiplier_s": "-H 40s:2:8:F:0 OUT",
    "err_group": "-H 1_00:2:8:F:0 OUT",
    "err_overflow": "-H 99999999999999999999:2:8:F:0 OUT",
    "err_octal_8": "-H 08:2:8:F:0 OUT",
    "err_mebi": "-H 1Mi:2:8:F:0 OUT",
    "err_long_option": "--make-test=40:2:8:F:9 OUT",
    "err_empty_short": "-H '' OUT",
    "err_empty_long": "--make-test= OUT",
    "err_two_operations": "-t -H 40:2:8:F:0 OUT",
    "err_two_files": "-H 40:2:8:F:0 OUT OUT2",
    "err_exists": "-H 40:2:8:F:0 OUT",
    "err_exists_not_a_map": "-H 40:2:8:F:0 OUT",
    "crash_one_zone": "-H 40:2:8-9:FF:0 OUT",
    "crash_t_equals_c": "-H 40:2:8-16,40:FF:0 OUT",
}
PRE_OF = {"f_force": "map", "err_exists": "map", "err_exists_not_a_map": "garbage"}


def _lines_after_header(text: str) -> list[str]:
    return text.splitlines(keepends=True)[3:]


def record(exe: str, name: str, line: str, work: Path) -> dict[str, object]:
    args = [a.replace("OUT", f"{name}.map") for a in shlex.split(line)]
    case: dict[str, object] = {"name": name, "args": shlex.split(line)}
    if name in PRE_OF:
        case["pre"] = PRE_OF[name]
        (work / f"{name}.map").write_text(PRE[PRE_OF[name]])
    done = subprocess.run([exe, *args], cwd=work, capture_output=True)
    case["exit"] = done.returncode if done.returncode >= 0 else 128 - done.returncode
    case["stderr"] = done.stderr.decode().split("\n")[0]
    if done.returncode != 0:
        return case
    out = done.stdout if "-" in args else (work / f"{name}.map").read_bytes()
    if name in BIG:
        lines = _lines_after_header(out.decode("ascii"))
        case["lines"] = len(lines)
        case["sha256"] = hashlib.sha256("".join(lines).encode()).hexdigest()
    else:
        gz = subprocess.run(["gzip", "-9", "-n", "-c"], input=out, capture_output=True, check=True)
        (HERE / f"{name}.map.gz").write_bytes(gz.stdout)
        case["map"] = f"{name}.map.gz"
    return case


def main() -> None:
    exe = sys.argv[1]
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    cases = []
    for name, line in {**F_MAPS, **FF_MAPS, **ERRORS}.items():
        with tempfile.TemporaryDirectory() as tmp:
            cases.append(record(exe, name, line, Path(tmp)))
    doc = {"ddrescuelog": exe, "version": version.stdout.split("\n")[0], "cases": cases}
    (HERE / "cases.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
