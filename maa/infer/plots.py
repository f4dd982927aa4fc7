"""Pictures of what was generated: a log-mel as a PNG."""

from __future__ import annotations

from pathlib import Path
from maa.core.io import atomic_path


def save_png(path: Path, mel, title: str = "") -> Path:
    """The log-mel as an image (vmin -5, vmax 1.5, as Make-An-Audio plots them), written atomically."""
    import matplotlib  # noqa: PLC0415  matplotlib: slow import, kept off this module's import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415  matplotlib: slow import, kept off this module's import

    fig, ax = plt.subplots(figsize=(max(4.0, mel.shape[-1] / 80), 2.6), dpi=100)
    ax.imshow(mel, origin="lower", aspect="auto", vmin=-5, vmax=1.5, cmap="magma",
              extent=(0, mel.shape[-1] / 62.5, 0, mel.shape[0]))
    ax.set_xlabel("s")
    ax.set_ylabel("mel bin")
    ax.set_title(title[:80], fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path

