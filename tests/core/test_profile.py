"""maa.core.progress: off without MAA_PROFILE; with it, the outermost stages, written at exit."""

import json
import subprocess
import sys

from maa.core import progress

SCRIPT = """
import time
from maa.core.progress import stage, staged

@staged("text")
def encode():
    time.sleep(0.01)

with stage("sampling"):
    encode()          # inside sampling: counted as sampling
encode()
"""


def test_off_by_default(monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    n = len(progress.spans())
    with progress.stage("x"):
        pass
    assert len(progress.spans()) == n


def test_outermost_stages_written_at_exit(tmp_path):
    out = tmp_path / "p.json"
    subprocess.run([sys.executable, "-c", SCRIPT], check=True, env={**__import__("os").environ, progress.ENV: str(out)})
    spans = json.loads(out.read_text())
    assert [s["stage"] for s in spans] == ["sampling", "text"]
    assert all(s["t1"] - s["t0"] >= 0.009 for s in spans) and spans[0]["t1"] <= spans[1]["t0"]
