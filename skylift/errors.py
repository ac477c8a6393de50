"""The root of skylift's user-facing errors.

Anything a user can fix (a config field, a file, a model version) raises a subclass of
SkyliftError with a message that names the thing to fix; the CLI prints it without a
traceback and exits 2, handlers map it to a 4xx/5xx reply with a JSON body.
"""

from __future__ import annotations

__all__ = ["SkyliftError"]


class SkyliftError(Exception):
    """An error whose message is meant for the user."""
