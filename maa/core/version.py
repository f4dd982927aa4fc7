"""The package version, low in the stack so any layer can record it (pyproject.toml holds the same string)."""

__version__ = "0.1.0"
