"""maa: Make-An-Audio as composable commands and a small library (see README, "Python API")."""

__version__ = "0.1.0"

from maa.core.errors import MaaError

__all__ = ["MaaError", "__version__"]
