"""The rules a request to the kernel must meet, whether it came by the comm or ``%greed``.

A variable name is a Python identifier that is not a keyword, of at most
``MAX_NAME_LEN`` characters; one request names at most ``MAX_REQUEST_NAMES``; and
``restore`` takes only names whose memory is paged out. The channel answers a broken
rule with an ``INVALID_PARAMS`` error and the magics with a ``UsageError``; both take
the sentence from here, so the two frontends refuse the same requests with the same
words. ``protocol.schema.json`` states the same rules (``$defs/Name``,
``$defs/NamesParams``), and a unit test checks that the two agree.
"""

from __future__ import annotations

import keyword
from collections.abc import Mapping

#: Longest accepted name and most names in one request.
MAX_NAME_LEN = 256
MAX_REQUEST_NAMES = 1000
#: How much of a bad value a refusal quotes, and how many names it lists.
QUOTE = 64
LISTED = 10


class Refused(ValueError):
    """A request that breaks a rule; its message is the one sentence shown to the user."""


def quote(value: object) -> str:
    """*value* as a refusal shows it: repr of its first ``QUOTE`` characters."""
    return repr(str(value)[:QUOTE])


def is_name(value: object) -> bool:
    """Whether *value* can name a variable: an identifier, not a keyword, not too long."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_NAME_LEN
        and value.isidentifier()
        and not keyword.iskeyword(value)
    )


def check_name(value: object) -> str:
    """*value* if it can name a variable, else :class:`Refused`."""
    if not is_name(value):
        raise Refused(f"not a variable name: {quote(value)}")
    return str(value)


def check_names(values: object) -> list[str]:
    """A request's names: a non-empty list of at most ``MAX_REQUEST_NAMES`` names."""
    if not isinstance(values, list) or not values:
        raise Refused("'names' must be a non-empty list of variable names")
    if len(values) > MAX_REQUEST_NAMES:
        raise Refused(f"at most {MAX_REQUEST_NAMES} names per request")
    return [check_name(value) for value in values]


def restorable(paged: Mapping[str, int], names: list[str] | None) -> list[str]:
    """The names a ``restore`` reads back: *names*, each of which must be paged out
    (else :class:`Refused`), or every paged-out name when *names* is None."""
    if names is None:
        return list(paged)
    missing = [name for name in names if name not in paged]
    if missing:
        more = len(missing) - LISTED
        shown = ", ".join(missing[:LISTED]) + (f" and {more} more" if more > 0 else "")
        raise Refused(f"not paged out: {shown}")
    return names
