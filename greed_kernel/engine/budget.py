"""Holding a memory budget: which values to page out, in which order, and what to
say when nothing more can be paged.

Paging is lossless (see paging.py), so under a budget a wrong guess costs only
a page-in: the first use reads the value back from the page cache or the disk.
The order is therefore simply least recently used first, larger first among
equally old values, with the names the last cell touched held back until
nothing else is left.
"""

from __future__ import annotations

import types
import typing as t
from collections.abc import Callable, Mapping

from ..analysis.tracker import Access
from ..memory.procmaps import PAGE
from ..memory.sizes import human_bytes, measure, owned_buffers
from .policy import Policy

#: Values listed when the budget cannot be held.
TOP_HOLDERS = 5
#: Bytes paged out between two looks at the pressure.
CHUNK_BYTES = 64 << 20

_CODE = (types.FunctionType, types.MethodType, types.BuiltinFunctionType, type)


def lru_order(
    ns: Mapping[str, t.Any],
    last: Mapping[str, Access],
    policy: Policy,
    just_ran: int,
) -> list[str]:
    """User names holding CPU buffers, least recently used first; names the cell
    numbered *just_ran* touched come last."""
    rows = []
    for name, value in list(ns.items()):
        if policy.internal_rule(name, value) is not None or issubclass(type(value), _CODE):
            continue
        access = last.get(name)
        touched_now = access is not None and access.execution >= just_ran
        when = float("-inf") if access is None else access.time
        rows.append((touched_now, when, name))
    rows.sort()
    return [name for _, _, name in rows]


def page_until(
    ns: Mapping[str, t.Any],
    order: list[str],
    page_out: Callable[[list[tuple[int, int, object]]], int],
    pressure: Callable[[], float],
    target: float,
    chunk_bytes: int = CHUNK_BYTES,
) -> tuple[list[str], int]:
    """Page out the values of *order*, one name at a time, until *pressure()* is at or
    below *target*. Returns the names paged and the bytes."""
    paged: list[str] = []
    total = 0
    seen: set[int] = set()
    for name in order:
        if pressure() <= target:
            break
        if name not in ns:
            continue
        # a value's buffers in walk order (a dict's or list's oldest items first), a
        # chunk at a time: a big container is paged only as far as the budget needs
        nbytes = 0
        for chunk in _chunks(owned_buffers(ns[name], seen=seen), chunk_bytes):
            nbytes += page_out(chunk)
            if pressure() <= target:
                break
        if nbytes:
            paged.append(name)
            total += nbytes
    return paged, total


def _chunks(
    buffers: list[tuple[int, int, object]], limit: int
) -> list[list[tuple[int, int, object]]]:
    """Groups of about *limit* bytes; a buffer larger than that is cut at page
    boundaries, so that one big tensor is paged only as far as needed."""
    chunks: list[list[tuple[int, int, object]]] = [[]]
    size = 0
    for buf in _pieces(buffers, limit):
        if size >= limit:
            chunks.append([])
            size = 0
        chunks[-1].append(buf)
        size += buf[1]
    return [c for c in chunks if c]


def holders(
    ns: Mapping[str, t.Any],
    policy: Policy,
    paged_bytes: Callable[[t.Any], int],
) -> list[dict[str, t.Any]]:
    """The values holding the most memory that is still in RAM, largest first."""
    rows = []
    seen: set[int] = set()
    for name, value in list(ns.items()):
        if policy.internal_rule(name, value) is not None:
            continue
        size = measure(value, seen=seen)
        resident = max(0, size.nbytes - paged_bytes(value))
        if resident:
            rows.append(
                {
                    "name": name,
                    "bytes": resident,
                    "type": type(value).__qualname__,
                    "device": size.device,
                    "why": _why_not_paged(size.device),
                }
            )
    rows.sort(key=lambda r: -r["bytes"])
    return rows[:TOP_HOLDERS]


def _why_not_paged(device: str | None) -> str:
    if device is not None and device.startswith("cuda"):
        return "GPU memory: not paged (the CUDA cache is released instead)"
    if device in ("cpu", "mixed"):
        return "CPU memory that cannot be paged in place (shared, pinned or busy)"
    return "plain Python objects: never paged"


def refusal_line(
    pressure: float, limit: int, rows: list[dict[str, t.Any]], paused: str = ""
) -> str:
    """The one line said under the cell when the budget cannot be held: why paging
    stopped (*paused*) when values that it could page are in RAM, else the largest
    values still in RAM."""
    where = f"Greed: memory is at {pressure:.0%} of the {human_bytes(limit)} budget"
    if paused and any(r["device"] in ("cpu", "mixed") for r in rows):
        return (
            f"{where} and the budget cannot be held: {paused.removeprefix('paging waits: ')}, "
            "so nothing is paged out until it stops."
        )
    top = ", ".join(f"{r['name']} ({human_bytes(r['bytes'])}, {r['type']})" for r in rows)
    return (
        f"{where} and nothing more can be paged out. Largest values still in RAM: "
        f"{top or '(none of yours)'}. Delete what you no longer need, or raise "
        "GreedKernel.memory_limit."
    )


def _pieces(buffers: list[tuple[int, int, object]], limit: int) -> list[tuple[int, int, object]]:
    out = []
    for ptr, nbytes, owner in buffers:
        end = ptr + nbytes
        cut = -(-ptr // PAGE) * PAGE + limit  # the first page boundary past *limit*
        while end - ptr > limit and cut < end:
            out.append((ptr, cut - ptr, owner))
            ptr, cut = cut, cut + limit
        out.append((ptr, end - ptr, owner))
    return out
