"""benchmarks/bench_paper_cpu.py: its random release converts, its split adds up, and the --tiny
run prints a row per case with the stages and the comparison."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_paper_cpu", ROOT / "benchmarks" / "bench_paper_cpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_random_release_is_deterministic_and_weight_normed():
    b = _bench()
    rows = [("conv.weight_g", (4, 1, 1), "float32"), ("conv.weight_v", (4, 3, 5), "float32"), ("conv.bias", (4,), "float32"),
            ("norm.weight", (4,), "float32"), ("emb.embeddings.word.weight", (10, 4), "float32"),
            ("x.position_ids", (1, 6), "int64")]
    a, c = b.random_state(rows, 0), b.random_state(rows, 0)
    assert all(torch.equal(a[k], c[k]) for k in a)
    g, v = a["conv.weight_g"].flatten(), a["conv.weight_v"].flatten(1).norm(dim=1)
    assert ((g / v - 1).abs() < 0.5).all()  # g = ||v|| (1 + N(0, 0.1^2)): the folded weight has norm ~1 per row
    assert torch.equal(a["x.position_ids"], torch.arange(6)[None])
    assert (a["norm.weight"] - 1).abs().max() < 0.5


def test_split_adds_up_to_the_wall_time():
    b = _bench()
    spans = [{"stage": "load", "t0": 10.5, "t1": 11.0}, {"stage": "text", "t0": 11.2, "t1": 11.3},
             {"stage": "sampling", "t0": 11.3, "t1": 14.0}, {"stage": "vocoder", "t0": 14.5, "t1": 15.0}]
    s = b.split(spans, 10.0, 15.5)
    assert s["start-up_s"] == pytest.approx(0.5) and s["sampling_s"] == pytest.approx(2.7)
    assert sum(s.values()) == pytest.approx(5.5) and s["other_s"] == pytest.approx(1.2)
    assert b.split([], 0, 1) == {}


@pytest.mark.slow
def test_tiny_run(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_paper_cpu.py"), "--tiny", "--cache",
                           str(tmp_path / "cache"), "--duration", "2", "--threads", "1", "--fast", "off", "--json", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["case"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"default", "--fast off"}
    d = rows["default"]
    stages = [k for k in d if k.endswith("_s") and k not in ("wall_s", "cpu_s")]
    assert {"start-up_s", "load_s", "text_s", "sampling_s", "vae decode_s", "vocoder_s", "write_s"} <= set(stages)
    assert sum(d[k] for k in stages) == pytest.approx(d["wall_s"], abs=0.01)
    assert d["sampling_s"] > 0 and d["vocoder_s"] > 0 and d["peak_rss_gb"] > 0
    assert rows["--fast off"]["wav_max_diff"] == 0  # on the CPU --fast off is the default path: the same bits
    assert "default" in proc.stdout and (tmp_path / "cache" / "maa1-tiny" / "convert.json").exists()
