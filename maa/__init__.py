"""maa: Make-An-Audio as composable commands and a small library (see README, "Python API")."""

from maa.core.errors import MaaError
from maa.core.version import __version__

__all__ = ["MaaError", "__version__", "load_pipeline"]


def __getattr__(name: str):
    # lazily: `import maa` stays cheap (no torch) until the pipeline is asked for
    if name == "load_pipeline":
        from maa.infer.pipeline import load_pipeline  # noqa: PLC0415  torch: slow import, kept off this module's import

        return load_pipeline
    raise AttributeError(f"module 'maa' has no attribute {name!r}")
