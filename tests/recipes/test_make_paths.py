"""recipes/datasets.mk refuses a RUN or ROOT with a space in one line (make would fail later with only "Error 2")."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
@pytest.mark.parametrize("var, value", [("RUN", "a b/run"), ("ROOT", "my data"), ("RUN", "")])
def test_a_path_with_spaces_is_named(var, value):
    p = subprocess.run(["make", "-C", str(REPO), "-n", "stage-import", f"{var}={value}"], capture_output=True,
                       text=True, check=False)
    assert p.returncode != 0
    lines = [l for l in p.stderr.splitlines() if "***" in l]
    assert len(lines) == 1 and f"{var}='{value}': make cannot use a path with spaces" in lines[0], p.stderr
    ok = subprocess.run(["make", "-C", str(REPO), "-n", "stage-import", "RUN=runs/x"], capture_output=True, text=True)
    assert ok.returncode == 0 and "recipes.datasets import" in ok.stdout
