"""``ddfs rescue`` refusals, exit statuses and signals, checked against GNU ddrescue 1.27."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ddfs_cmd, map_lines, run_ddfs, run_ddrescue


def both(tmp_path: Path, *args: str) -> tuple[int, int, str]:
    """Run ddrescue and ddfs rescue with the same arguments; return both exit codes."""
    a = run_ddrescue(*args)
    b = run_ddfs("rescue", *args)
    return a.returncode, b.returncode, b.stderr


def test_same_file_refused(tmp_path: Path, random_file) -> None:
    infile = random_file(1 << 16)
    link = tmp_path / "link"
    link.symlink_to(infile)
    before = infile.read_bytes()
    for out in (str(infile), str(link)):
        rc1, rc2, err = both(tmp_path, str(infile), out, str(tmp_path / "m"))
        assert rc1 == rc2 == 1
        assert "Infile and outfile are the same." in err
    assert infile.read_bytes() == before
    assert not (tmp_path / "m").exists()


def test_mapfile_same_as_input_or_output(tmp_path: Path, random_file) -> None:
    infile = random_file(1 << 16)
    out = tmp_path / "out"
    out.write_bytes(b"x")
    rc1, rc2, err = both(tmp_path, str(infile), str(out), str(infile))
    assert rc1 == rc2 == 1 and "Infile and mapfile are the same." in err
    rc1, rc2, err = both(tmp_path, str(infile), str(out), str(out))
    assert rc1 == rc2 == 1 and "Outfile and mapfile are the same." in err
    assert out.read_bytes() == b"x"


def test_device_output_needs_force(tmp_path: Path, random_file) -> None:
    infile = random_file(1 << 16)
    rc1, rc2, err = both(tmp_path, str(infile), "/dev/null", str(tmp_path / "m"))
    assert rc1 == rc2 == 1 and "not a regular file" in err and "--force" in err
    res = run_ddfs("rescue", "-f", "-q", str(infile), "/dev/null", str(tmp_path / "m2"))
    assert res.returncode == 0, res.stderr
    res = run_ddfs("rescue", "-f", "-S", str(infile), "/dev/null", str(tmp_path / "m3"))
    assert res.returncode == 1


def test_truncate_with_existing_map_refused(tmp_path: Path, random_file) -> None:
    infile = random_file(1 << 16)
    mp = tmp_path / "m"
    assert run_ddfs("rescue", "-q", str(infile), str(tmp_path / "o"), str(mp)).returncode == 0
    rc1, rc2, err = both(tmp_path, "-t", str(infile), str(tmp_path / "o"), str(mp))
    assert rc1 == rc2 == 1 and "incompatible" in err


def test_empty_domain_and_bad_start(tmp_path: Path, random_file) -> None:
    infile = random_file(1 << 16)
    rc1, rc2, _ = both(tmp_path, "-s0", str(infile), str(tmp_path / "o"), str(tmp_path / "m"))
    assert rc1 == rc2 == 0
    rc1, rc2, err = both(tmp_path, "-i1Mi", str(infile), str(tmp_path / "o"), str(tmp_path / "n"))
    assert rc1 == rc2 == 1 and "Can't start reading" in err


def test_bad_option_values_exit_1(tmp_path: Path, random_file) -> None:
    infile = random_file(1 << 16)
    for opt in ("-c0", "-K1k", "--cpass=6", "-b1.5k", "-T1.5", "-s1K"):
        rc1, rc2, err = both(tmp_path, opt, str(infile), str(tmp_path / "o"), str(tmp_path / "m"))
        assert rc1 == rc2 == 1, (opt, err)
    assert not (tmp_path / "m").exists()


def test_input_opened_read_only_and_unchanged(tmp_path: Path, random_file) -> None:
    infile = random_file(1 << 20)
    os.chmod(infile, 0o444)
    before = infile.read_bytes()
    res = run_ddfs("rescue", "-q", str(infile), str(tmp_path / "o"), str(tmp_path / "m"))
    assert res.returncode == 0, res.stderr
    assert infile.read_bytes() == before == (tmp_path / "o").read_bytes()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_saves_map_and_reraises(tmp_path: Path, sig: int, code: int) -> None:
    big = tmp_path / "big"
    with open(big, "wb") as fh:
        fh.truncate(64 << 30)  # sparse: reads are fast but take seconds in all
    mp = tmp_path / "m"
    proc = subprocess.Popen(ddfs_cmd("rescue", "-q", str(big), str(tmp_path / "o"), str(mp)))
    try:
        deadline = time.monotonic() + 10
        while not mp.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(sig)
        rc = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == -sig, rc  # died by the same signal: the shell shows 128+N
    assert 128 + sig == code
    status = map_lines(mp)[0].split()
    assert status[1] == "?", "the phase status stays after an interrupt"
    rescued = int(map_lines(mp)[1].split()[1], 0)
    assert int(status[0], 0) == rescued, "current_pos names the first unread block"
    assert os.path.getsize(tmp_path / "o") == rescued
    res = subprocess.run(["ddrescuelog", "-t", str(mp)], capture_output=True, text=True)
    assert res.returncode == 0


def test_output_options_like_ddrescue(tmp_path: Path, random_file) -> None:
    """-S writes holes for zero clusters, -D writes with O_DIRECT, -x extends the output."""
    data = random_file(1 << 20).read_bytes()
    infile = tmp_path / "in2"
    infile.write_bytes(data + bytes(2 << 20) + data)
    for tool, run in (("ddrescue", run_ddrescue), ("ddfs", run_ddfs)):
        args = ("rescue", "--schedule=ddrescue-1.27") if tool == "ddfs" else ()
        out = tmp_path / f"{tool}.sparse"
        res = run(*args, "-q", "-S", str(infile), str(out), str(tmp_path / f"{tool}.m1"))
        assert res.returncode == 0, res.stderr
        assert out.read_bytes() == infile.read_bytes()
        assert os.stat(out).st_blocks * 512 <= (2 << 20) + 65536, tool
        out = tmp_path / f"{tool}.direct"
        res = run(
            *args, "-q", "-D", "-x", "5Mi", str(infile), str(out), str(tmp_path / f"{tool}.m2")
        )
        assert res.returncode == 0, res.stderr
        assert out.read_bytes() == infile.read_bytes() + bytes(1 << 20)
    assert map_lines(tmp_path / "ddrescue.m2") == map_lines(tmp_path / "ddfs.m2")


def test_mount_with_the_mapfile_forgotten_says_so(tmp_path: Path) -> None:
    """Issue 16, item 6: ``ddfs mount DISK IMG MNT`` said ``Missing argument 'MOUNTPOINT'``
    (the mount point was given: the mapfile was forgotten). Exit 1, two lines, no traceback."""
    res = run_ddfs("mount", "disk", "img", str(tmp_path / "mnt"))
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        "ddfs: A mapfile and a mount point must both be specified: "
        "ddfs mount INFILE OUTFILE MAPFILE MOUNTPOINT",
        "      Try 'ddfs mount --help' for more information.",
    ]
    res = run_ddfs("mount", "disk")
    assert res.returncode == 1
    assert res.stderr.startswith("ddfs: Both input and output files must be specified.\n")


@pytest.mark.parametrize("command", ["rescue", "mount", "log", "map", "status", "report", "domain"])
def test_every_command_takes_v_for_version(command: str) -> None:
    """Issue 16, item 7: ``-V``/``--version`` on every command, as ddrescue and ddrescuelog."""
    for flag in ("-V", "--version"):
        res = run_ddfs(command, flag)
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("ddfs, version ")


def test_shell_completion_scripts() -> None:
    """Issue 16, item 7: ``ddfs completion bash|zsh|fish`` prints click's completion script,
    and the bash protocol completes command names."""
    for shell, marker in (("bash", "_ddfs_completion"), ("zsh", "#compdef ddfs"), ("fish", "ddfs")):
        res = run_ddfs("completion", shell)
        assert res.returncode == 0, res.stderr
        assert marker in res.stdout
    env = {**os.environ, "_DDFS_COMPLETE": "bash_complete"}
    env.update({"COMP_WORDS": "ddfs res", "COMP_CWORD": "1"})
    done = subprocess.run(ddfs_cmd(), env=env, capture_output=True, text=True)
    assert "plain,rescue" in done.stdout.splitlines()


def test_notify_command_runs_at_the_end(tmp_path: Path, random_file) -> None:
    """Issue 16: ``--notify-command`` runs once when the rescue ends, with the outcome in its
    environment."""
    infile = random_file(1 << 20)
    note = tmp_path / "note"
    cmd = f'echo "$DDFS_STATUS $DDFS_EXIT $DDFS_MESSAGE $DDFS_MAPFILE" >> {note}'
    res = run_ddfs(
        "rescue", "-q", "--notify-command", cmd, str(infile), str(tmp_path / "o"),
        str(tmp_path / "m"),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert note.read_text() == f"finished 0 Finished {tmp_path / 'm'}\n"
    note.unlink()
    (tmp_path / "tm").write_text("0 + 1\n0 0x1000 +\n0x1000 0x1000 -\n0x2000 0xFE000 +\n")
    res = run_ddfs(
        "rescue", "-q", "-X0", "-H", str(tmp_path / "tm"), "--notify-command", cmd,
        str(infile), str(tmp_path / "o2"), str(tmp_path / "m2"),
    )  # fmt: skip
    assert res.returncode == 1
    assert note.read_text().startswith("stopped 1 Too many read errors")


def test_man_pages_from_the_help(tmp_path: Path) -> None:
    """Issue 16, item 7: ``ddfs.1`` and one page per command, made from ``--help`` (so they
    list every option) and rendered by man; ``make install`` puts them where man looks."""
    from ddfs.commands.manpage import write_pages
    from ddfs.commands.rescue_table import OPTIONS

    pages = {p.name: p for p in write_pages(tmp_path)}
    assert {"ddfs.1", "ddfs-rescue.1", "ddfs-mount.1", "ddfs-log.1", "ddfs-hash.1"} <= set(pages)
    env = {**os.environ, "MANWIDTH": "80"}
    shown = subprocess.run(
        ["man", "-l", str(pages["ddfs-rescue.1"])], capture_output=True, text=True, env=env
    ).stdout
    for spec in OPTIONS:
        assert spec.names[-1] in shown, spec.names
    assert "DDFS-RESCUE(1)" in shown
    top = subprocess.run(["man", "-l", str(pages["ddfs.1"])], capture_output=True, text=True)
    assert "ddfs rescue" in top.stdout and "ddfs-rescue(1)" in top.stdout
    makefile = (Path(__file__).resolve().parent.parent / "Makefile").read_text()
    assert "ddfs.commands.manpage $(MAN_DIR)" in makefile
