"""What the mappers share: the exception whose message is the reason a user sees."""

from __future__ import annotations


class Rejected(ValueError):
    """A pair that cannot be mapped faithfully; the message is the whole reject reason.

    Raised instead of guessing: a record stored wrong is worse than a record rejected,
    because nothing tells anyone about it.
    """
