"""One exception type for user-facing problems, one warning type for silent alterations.

Library code raises MaaError with a one-line message that names the file and the fix;
the CLI prints it without a traceback and exits non-zero. Anything else is a bug.
"""

from __future__ import annotations
import warnings


class MaaError(Exception):
    """A problem with the user's input or environment, explained in one line."""



class MaaWarning(UserWarning):
    """Something was altered or left out, and the user should know (a truncated file, clipped samples).

    Library code calls `warn(...)`; the CLI prints each as one `warning:` line on stderr.
    """


def warn(message: str) -> None:
    """Warn the user (a MaaWarning: the commands print it as one `warning:` line)."""
    warnings.warn(message, MaaWarning, stacklevel=2)
