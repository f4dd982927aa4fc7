"""maa: Make-An-Audio as composable commands. The library: no CLI code here."""

__version__ = "0.1.0"

from maa.errors import MaaError  # noqa: F401
