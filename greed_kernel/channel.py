"""The ``greed`` comm target: events out to every open comm, requests in from frontends.

A frontend opens a comm with target ``greed``; the kernel answers at once with
a ``hello``. Events (``execution:cleanup``, ``execution:optimize``,
``memory:pressure``, ...) go to every open comm. Requests are plain dicts with a
``request`` name; nothing in a payload is ever evaluated.
"""

from __future__ import annotations

import logging
import threading
import typing as t
from collections.abc import Callable

from . import __version__
from .stats import MAX_NAMES, capped, json_clean

TARGET = "greed"
#: Longest accepted name and most names in one request.
MAX_NAME_LEN = 256
MAX_REQUEST_NAMES = 1000


#: Requests that change the namespace or its memory: never run while a cell runs.
WAITS_FOR_CELL = frozenset({"cleanup", "optimize", "restore"})


class RequestError(ValueError):
    """A malformed or unknown request; its message goes back as an ``error`` event."""


class Channel:
    """Keeps the open ``greed`` comms and answers their requests."""

    def __init__(
        self,
        engine: t.Any,
        config: Callable[[], dict[str, t.Any]],
        log: logging.Logger,
        on_main_thread: Callable[[Callable[[], None]], None] | None = None,
    ):
        self.engine = engine
        self.config = config
        self.log = log
        # How to run work on the kernel's main thread (IOLoop.add_callback, thread-safe):
        # a frontend may route our comm through a kernel subshell, i.e. another thread,
        # and the namespace must only be touched where cells run.
        self.on_main_thread = on_main_thread
        self.comms: dict[str, t.Any] = {}
        self.handlers: dict[str, Callable[[dict[str, t.Any]], dict[str, t.Any] | None]] = {
            "stats": self._stats,
            "cleanup": lambda data: self._run("cleanup"),
            "optimize": lambda data: self._run("optimize"),
            "preserve": self._preserve,
            "unpreserve": self._unpreserve,
            "vars": self._vars,
            "restore": self._restore,
            "history": self._history,
        }

    def register(self, comm_manager: t.Any) -> None:
        comm_manager.register_target(TARGET, self.on_open)

    # -- comm callbacks ------------------------------------------------------------------
    def on_open(self, comm: t.Any, open_msg: dict[str, t.Any]) -> None:
        try:
            self.comms[comm.comm_id] = comm
            comm.on_msg(self.on_msg)
            comm.on_close(lambda msg: self.comms.pop(comm.comm_id, None))
            hello = {
                "event": "hello",
                "version": __version__,
                "stats": self.engine.snapshot(),
                "config": self.config(),
            }
            comm.send(json_clean(hello))
        except Exception:
            self.log.exception("greed: opening a comm failed")

    def on_msg(self, msg: dict[str, t.Any]) -> None:
        if (
            self.on_main_thread is not None
            and threading.current_thread() is not threading.main_thread()
        ):
            self.on_main_thread(lambda: self.on_msg(msg))  # queued behind any running cell
            return
        data = (msg.get("content") or {}).get("data") if isinstance(msg, dict) else None
        name = data.get("request") if isinstance(data, dict) else None
        if isinstance(name, str) and name in WAITS_FOR_CELL:
            # The event loop also runs while an async cell awaits: work that changes
            # the namespace or its memory waits until no cell is running.
            self.engine.when_no_cell(lambda: self._answer(msg))
        else:
            self._answer(msg)

    def _answer(self, msg: dict[str, t.Any]) -> None:
        comm_id = None
        try:
            content = msg.get("content") or {}
            comm_id = content.get("comm_id")
            reply = self.handle(content.get("data"))
        except Exception as e:  # never let a comm message take the kernel down
            self.log.exception("greed: comm request failed")
            reply = {"event": "error", "message": f"request failed: {type(e).__name__}"}
        if reply is not None:
            self._send(self.comms.get(comm_id), reply)

    def handle(self, data: t.Any) -> dict[str, t.Any] | None:
        """Answer one request dict; malformed requests get an ``error`` event."""
        try:
            if not isinstance(data, dict):
                raise RequestError("a request must be an object with a 'request' key")
            name = data.get("request")
            if not isinstance(name, str):
                raise RequestError("'request' must be a string")
            handler = self.handlers.get(name)
            if handler is None:
                known = ", ".join(sorted(self.handlers))
                raise RequestError(f"unknown request {name[:64]!r}; known: {known}")
            return handler(data)
        except RequestError as e:
            return {"event": "error", "message": str(e)}

    def publish(self, event: dict[str, t.Any]) -> None:
        """Send an event to every open comm."""
        for comm in list(self.comms.values()):
            self._send(comm, event)

    def _send(self, comm: t.Any, event: dict[str, t.Any]) -> None:
        if comm is None:
            return
        if getattr(comm, "_closed", False):  # closed by the kernel side: forget it
            self.comms.pop(getattr(comm, "comm_id", None), None)
            return
        try:
            comm.send(json_clean(event))
        except Exception:
            self.log.exception("greed: sending %s failed", event.get("event"))

    # -- requests ------------------------------------------------------------------------
    def _stats(self, data: dict[str, t.Any]) -> dict[str, t.Any]:
        return {"event": "stats", "stats": self.engine.snapshot()}

    def _run(self, kind: str) -> dict[str, t.Any] | None:
        report = getattr(self.engine, kind)("manual")
        if report is None:
            return {"event": "error", "message": f"{kind} failed; see the kernel log"}
        return None  # the engine already published execution:<kind>

    def _preserve(self, data: dict[str, t.Any]) -> dict[str, t.Any]:
        names = _names(data)
        self.engine.preserve(names)
        return {"event": "preserved", "names": capped(names)[0]}

    def _unpreserve(self, data: dict[str, t.Any]) -> dict[str, t.Any]:
        names = _names(data)
        self.engine.unpreserve(names)
        return {"event": "unpreserved", "names": capped(names)[0]}

    def _restore(self, data: dict[str, t.Any]) -> dict[str, t.Any]:
        names = _restore_names(self.engine, data)
        nbytes = self.engine.page_in(names)
        return {"event": "restored", "names": capped(names)[0], "bytes": nbytes}

    def _history(self, data: dict[str, t.Any]) -> dict[str, t.Any]:
        return {"event": "history", "reports": list(self.engine.stats.reports)}

    def _vars(self, data: dict[str, t.Any]) -> dict[str, t.Any]:
        rows = self.engine.variables()
        return {
            "event": "vars",
            "variables": rows[:MAX_NAMES],
            "omitted": max(0, len(rows) - MAX_NAMES),
        }


def _restore_names(engine: t.Any, data: dict[str, t.Any]) -> list[str]:
    paged = engine.paged_names()
    if data.get("all") is True:
        return list(paged)
    names = _names(data)
    unknown = [n for n in names if n not in paged]
    if unknown:
        raise RequestError(f"not paged out: {', '.join(unknown[:10])}")
    return names


def _names(data: dict[str, t.Any]) -> list[str]:
    names = data.get("names")
    if not isinstance(names, list) or not names:
        raise RequestError("'names' must be a non-empty list of variable names")
    if len(names) > MAX_REQUEST_NAMES:
        raise RequestError(f"at most {MAX_REQUEST_NAMES} names per request")
    for name in names:
        if not isinstance(name, str) or len(name) > MAX_NAME_LEN or not name.isidentifier():
            raise RequestError(f"not a variable name: {str(name)[:64]!r}")
    return names
