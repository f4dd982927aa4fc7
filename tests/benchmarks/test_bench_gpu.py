"""benchmarks/bench_gpu.py keeps working: its --tiny CPU run gives every section's rows."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_gpu_tiny_on_cpu(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--tiny", "--device", "cpu",
                           "--json", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    by = {}
    for r in rows:
        by.setdefault(r["section"], []).append(r)
    gen = [r for r in by["generate"] if "latency_s" in r]
    assert gen and gen[0]["mode"] == "eager fp32" and gen[0]["calls"] == 2 and gen[0]["latency_s"] > 0
    assert any(r.get("batch") == 2 and r["audio_s_per_s"] > 0 for r in by["generate"])
    try:
        import diffusers  # noqa: F401

        d = [r for r in by["diffusers"] if "maa_over_diffusers" in r]
        assert {r["batch"] for r in d} == {1, 2}
        assert all(r["maa_over_diffusers"] == pytest.approx(r["maa_s"] / r["diffusers_s"], rel=0.01) for r in d)
    except ImportError:
        assert "skipped" in by["diffusers"][0]
    assert {r["model"] for r in by["train"]} == {"ldm tiny", "vae tiny"}
    assert all(r["steps_per_s"] > 0 for r in by["train"])
    (mel,) = by["mel"]
    assert mel["clips"] == 8 and mel["speedup"] > 0
    assert "[generate]" in proc.stdout and "[mel]" in proc.stdout  # the one table
