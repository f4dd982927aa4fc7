"""maa.core.device: the free-core count, argv parsing, and the environment set before torch loads."""

import os
import subprocess
import sys

import pytest

from maa.core import device as th

STAT = """cpu  300 0 100 500 20 0 0 0 0 0
cpu0 100 0 50 300 10 0 0 0 0 0
cpu1 200 0 50 200 10 0 0 0 0 0
intr 12345
"""


def test_read_cpu_times(tmp_path):
    p = tmp_path / "stat"
    p.write_text(STAT)
    # busy = user + nice + system + irq..., idle = idle + iowait
    assert th.read_cpu_times(p) == {0: (150, 460), 1: (250, 460)}


def test_busy_cpus():
    before = {0: (100, 1000), 1: (100, 1000)}
    after = {0: (200, 1100), 1: (110, 1100)}  # cpu0 fully busy, cpu1 at 10 %
    assert th.busy_cpus(before, after) == pytest.approx(1.1)
    assert th.busy_cpus(before, after, cpus={1}) == pytest.approx(0.1)


@pytest.mark.parametrize("busy_per_cpu, want", [((0.0, 0.0), 2), ((1.0, 0.05), 1), ((1.0, 1.0), 1), ((0.2, 0.2), 2),
                                                ((0.4, 0.4), 1)])
def test_free_cores(monkeypatch, busy_per_cpu, want):
    samples = iter([{0: (0, 0), 1: (0, 0)}, {c: (int(100 * b), 100) for c, b in enumerate(busy_per_cpu)}])
    monkeypatch.setattr(th, "read_cpu_times", lambda path=None: next(samples))
    monkeypatch.setattr(th, "usable_cores", lambda: 2)
    monkeypatch.setattr(th.os, "sched_getaffinity", lambda pid: {0, 1})
    assert th.free_cores(sample_s=0) == want


def test_free_cores_without_proc(monkeypatch):
    def boom(path=None):
        raise OSError("no /proc")

    monkeypatch.setattr(th, "read_cpu_times", boom)
    monkeypatch.setattr(th, "usable_cores", lambda: 3)
    assert th.free_cores(sample_s=0) == 3


def test_cgroup_quota(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert th.cgroup_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert th.cgroup_quota(tmp_path) is None
    assert th.cgroup_quota(tmp_path / "missing") is None


def test_threads_from_argv():
    assert th.threads_from_argv(["generate", "x", "--threads", "3"]) == 3
    assert th.threads_from_argv(["generate", "--threads=2", "x"]) == 2
    assert th.threads_from_argv(["generate", "x"]) == 0
    assert th.threads_from_argv(["generate", "--threads", "many"]) == 0
    assert th.threads_from_argv(["generate", "--threads"]) == 0


def test_choose_threads_splits_among_torchrun_processes(monkeypatch):
    monkeypatch.setattr(th, "free_cores", lambda sample_s=0: 8)
    monkeypatch.setattr(th, "usable_cores", lambda: 8)
    assert th.choose_threads(0, {"LOCAL_WORLD_SIZE": "4"}) == 2
    assert th.choose_threads(0, {"LOCAL_WORLD_SIZE": "16"}) == 1
    assert th.choose_threads(5, {"LOCAL_WORLD_SIZE": "4"}) == 5


def test_configure_process_env(monkeypatch):
    monkeypatch.setattr(th, "free_cores", lambda sample_s=0: 1)
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # as in the CLI, before torch loads
    env = {}
    assert th.configure_process(0, env) == 1
    assert env["OMP_NUM_THREADS"] == "1" and env["MKL_NUM_THREADS"] == "1" and env["OMP_WAIT_POLICY"] == "PASSIVE"
    env = {"OMP_NUM_THREADS": "4", "OMP_WAIT_POLICY": "ACTIVE"}  # what the user exported is kept
    assert th.configure_process(0, env) == 4
    assert env["OMP_WAIT_POLICY"] == "ACTIVE" and env["MKL_NUM_THREADS"] == "4"
    env = {"OMP_NUM_THREADS": "4"}
    assert th.configure_process(2, env) == 2 and env["OMP_NUM_THREADS"] == "2"  # --threads N wins
    env = {}  # a one-off call keeps OpenMP's own wait policy
    assert th.configure_process(0, env, long_running=False) == 1 and "OMP_WAIT_POLICY" not in env


def test_first_word():
    assert th.first_word(["--threads", "2", "train-ldm"]) == "2"  # options' values are not told apart here
    assert th.first_word(["-q", "mel", "clips"]) == "mel" and th.first_word(["--version"]) == ""


def test_torch_starts_with_the_policy():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
    code = ("from maa.core.device import configure_process; n = configure_process(1); import os, torch; "
            "print(n, torch.get_num_threads(), os.environ['OMP_WAIT_POLICY'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1", "PASSIVE"]


def test_threads_are_capped_at_the_usable_cores(monkeypatch, capsys):
    """Issue 23: `--threads 100000` (or a record's "threads") started that many threads; now the usable cores, one line."""
    import torch

    monkeypatch.setattr(th, "usable_cores", lambda: 2)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    env = {}
    assert th.configure_process(100000, env) == 2 and env["OMP_NUM_THREADS"] == "2"
    monkeypatch.setitem(sys.modules, "torch", torch)
    before = torch.get_num_threads()
    try:
        assert th.apply_threads(100000, "rec.wav: threads") == 2 == torch.get_num_threads()
        assert th.apply_threads(1) == 1
    finally:
        torch.set_num_threads(before)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["warning: rec.wav: threads 100000: only 2 cores are usable here; using 2"]
