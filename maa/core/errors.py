"""One exception type for user-facing problems.

Library code raises MaaError with a one-line message that names the file and the fix;
the CLI prints it without a traceback and exits non-zero. Anything else is a bug.
"""

from __future__ import annotations


class MaaError(Exception):
    """A problem with the user's input or environment, explained in one line."""

