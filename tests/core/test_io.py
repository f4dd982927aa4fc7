"""Atomic writes: what a kill -9 leaves, and what the next run removes."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from maa.core.io import atomic_path, is_temp_name, sweep_stale_temps, write_text_atomic

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock-based leftovers need POSIX")

WRITER = """
import os, sys, time
from maa.core.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a checkpoint")
    print(tmp, flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), 9)
    time.sleep(60)
"""


def _writer(target: Path, mode: str) -> tuple[subprocess.Popen, Path]:
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(target), mode], stdout=subprocess.PIPE, text=True,
                         cwd=Path(__file__).resolve().parents[2])
    return p, Path(p.stdout.readline().strip())


def test_kill_9_leftover_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "trainer_state.pt"
    p, tmp = _writer(target, "kill")
    assert p.wait(30) == -signal.SIGKILL
    assert tmp.exists() and is_temp_name(tmp.name) and not target.exists()
    umask = os.umask(0)
    os.umask(umask)
    assert tmp.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    write_text_atomic(target, "complete")
    assert target.read_text() == "complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trainer_state.pt"]


def test_a_live_writers_temp_is_kept(tmp_path):
    target = tmp_path / "clip.wav"
    p, tmp = _writer(target, "sleep")
    try:
        assert sweep_stale_temps(tmp_path, force=True) == []
        assert tmp.exists()
    finally:
        p.kill()
        p.wait(30)
    assert sweep_stale_temps(tmp_path, force=True) == [tmp]


def test_only_our_temp_names_are_touched(tmp_path):
    keep = [".bashrc", ".clip.wav.abcdefgh.npy", ".notes.abcdefgh.txt", "clip.wav.abcdefgh.wav", ".x.abcdefg.tmp"]
    for n in keep:
        (tmp_path / n).write_text("user data")
    (tmp_path / ".m.jsonl.k2_9xq0a.jsonl").write_text("stale")
    assert [p.name for p in sweep_stale_temps(tmp_path, force=True)] == [".m.jsonl.k2_9xq0a.jsonl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)


def test_failed_block_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.npy") as tmp:
        tmp.write_bytes(b"x")
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []
