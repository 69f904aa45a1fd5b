"""``ddfs log`` against GNU ddrescuelog 1.27, side by side on the same maps."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_ddfs

EXE = shutil.which("ddrescuelog")
assert EXE is not None, "ddrescuelog (package gddrescue) must be installed: run `make test`"

MAPS = {
    "all": "0x3000 - 2\n0 0x1000 +\n0x1000 0x800 ?\n0x1800 0x800 *\n0x2000 0x400 /\n"
    "0x2400 0x200 -\n0x2600 0x1A00 +\n0x4000 0x1001 ?\n",
    "late": "0 ?\n0x1000 0x1000 +\n0x2000 0x10 -\n",
    "done": "0 + 1\n0 0x100000000 +\n",
    "other": "0 ?\n0 0x80 +\n0x80 0x100 +\n0x180 0x100 /\n0x280 0x3000 +\n",
}


def _random_map(seed: int, n: int = 3000) -> str:
    rng = random.Random(seed)
    pos = 0
    lines = ["0x5000 * 1"]
    prev = ""
    for _ in range(n):
        st = rng.choice([c for c in "?*/-+" if c != prev])
        size = rng.choice([rng.randint(1, 5000), 512 * rng.randint(1, 64)])
        lines.append(f"0x{pos:X} 0x{size:X} {st}")
        pos += size
        prev = st
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def maps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("maps")
    out = {}
    for name, text in {**MAPS, "rand": _random_map(7)}.items():
        out[name] = d / f"{name}.map"
        out[name].write_text(text)
    out["dom"] = d / "dom.map"
    out["dom"].write_text("0 ?\n0x800 0x1000 +\n0x1800 0x1000 -\n0x2800 0x20000 +\n")
    return out


def _noncomment(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]


def _both(*args: str, stdin: str | None = None) -> tuple[subprocess.CompletedProcess[str], ...]:
    assert EXE
    gnu = subprocess.run([EXE, *args], capture_output=True, text=True, input=stdin)
    ours = run_ddfs("log", *args, input=stdin)
    return gnu, ours


def _check(*args: str, stdin: str | None = None) -> None:
    gnu, ours = _both(*args, stdin=stdin)
    assert ours.returncode == gnu.returncode, (args, ours.stderr, gnu.stderr)
    assert _noncomment(ours.stdout) == _noncomment(gnu.stdout), args


DOMAINS = [[], ["-i", "0x1800", "-s", "0x2000"], ["-m", "DOM"], ["-i", "0x100", "-m", "DOM"]]


OPS = [
    ["-t"], ["-t", "-B"], ["-D"], ["-a", "?*-,+/+"], ["-n"], ["-l", "?-"],
    ["-l", "+", "-b", "4096"], ["-A"],
    ["-x", "OTHER"], ["-y", "OTHER"], ["-z", "OTHER"], ["-p", "OTHER"], ["-P", "ALL"],
]  # fmt: skip
# -p with -m on a map that starts after 0 is a known difference (left out; see the issue note)
CASES = [
    (name, dom, op)
    for name in ("all", "late", "done", "rand")
    for dom in range(len(DOMAINS))
    for op in OPS
    if not (op[0] == "-p" and name == "late" and dom >= 2)
]


@pytest.mark.parametrize(("name", "dom", "op"), CASES)
def test_same_output(maps: dict[str, Path], name: str, dom: int, op: list[str]) -> None:
    subst = {"DOM": str(maps["dom"]), "OTHER": str(maps["other"]), "ALL": str(maps["all"])}
    args = [subst.get(a, a) for a in [*op, *DOMAINS[dom]]]
    _check(*args, str(maps[name]))


def test_status_several_files(maps: dict[str, Path]) -> None:
    _check("-t", str(maps["all"]), str(maps["late"]), str(maps["rand"]))


@pytest.mark.parametrize("t", ["", "+", "/"])
def test_complete(tmp_path: Path, t: str) -> None:
    for i, text in enumerate(["0 ?\n0x3000 0x1000 +\n0x1000 0x800 -\n0x1000 0x400 -\n",
                              "0 ?\n0x1000 0x1000 +\n0x3000 0x1000 ?\n"]):  # fmt: skip
        p = tmp_path / f"syn{i}.map"
        p.write_text(text)
        _check(f"-C{t}", str(p))


@pytest.mark.parametrize("extra", [[], ["-c?/", "-s", "0x1800"], ["-b", "4096"]])
def test_create(extra: list[str]) -> None:
    args = extra if any(a.startswith("-c") for a in extra) else ["-c", *extra]
    _check(*args, "-", stdin="1\n3\n4\n10\n")
    _check(*args, "-", stdin="1\n0x10\n\n  7 \nabc\n")


def test_create_refuses_overwrite(tmp_path: Path) -> None:
    for prog in ("gnu", "ours"):
        p = tmp_path / f"{prog}.map"
        p.write_text("0 ?\n0 0x200 +\n")
        gnu, ours = _both("-c", str(p), stdin="1\n")
        assert (gnu if prog == "gnu" else ours).returncode == 1


def test_delete_if_done(tmp_path: Path) -> None:
    for text in (MAPS["done"], MAPS["all"]):
        a, b = tmp_path / "a.map", tmp_path / "b.map"
        a.write_text(text)
        b.write_text(text)
        assert EXE
        gnu = subprocess.run([EXE, "-d", str(a)], capture_output=True, text=True)
        ours = run_ddfs("log", "-d", str(b))
        assert gnu.returncode == ours.returncode
        assert a.exists() == b.exists()


@pytest.mark.parametrize(
    "args",
    [["-a", "?"], ["-a", "?x,+-"], ["-t", "-n"], ["-C", "-c"], ["-Cx"], ["-l", "?", "-o", "1"]],
)
def test_errors(maps: dict[str, Path], args: list[str]) -> None:
    _check(*args, str(maps["all"]))
