"""The ``greed`` comm target: JSON-RPC 2.0 requests in, responses and events out.

A frontend opens a comm with target ``greed``; the kernel sends it a ``hello``
notification, then every event (``execution:cleanup``, ``memory:pressure``, ...) as a
notification to every open comm. Requests (``{"jsonrpc": "2.0", "id", "method",
"params"}``) are answered on the comm that sent them only, with the same ``id``. The
methods, their params and results, and the events are in ``protocol.schema.json``.

Opens and requests run on the kernel's main thread (a frontend may route the comm
through a kernel subshell, i.e. another thread), and never while a cell runs or awaits:
the service's ``when_no_cell`` holds them until the cell is over. Nothing in a payload
is ever evaluated, and a malformed message gets an error response, never an exception.
"""

from __future__ import annotations

import logging
import threading
import typing as t
from collections.abc import Callable

from .. import __version__
from ..engine.stats import MAX_NAMES, capped, json_clean
from . import rules
from .protocol import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    JSONRPC,
    METHOD_NOT_FOUND,
    OPERATION_FAILED,
    TARGET,
    RpcError,
    error,
    is_id,
    notification,
    result,
)

if t.TYPE_CHECKING:
    from ..engine.service import Service

Params = dict[str, t.Any]


class Comm(t.Protocol):
    """What the channel uses of a ``comm.base_comm.BaseComm``."""

    comm_id: str

    def send(self, data: t.Any = None) -> None: ...
    def on_msg(self, callback: Callable[[dict[str, t.Any]], None] | None) -> None: ...
    def on_close(self, callback: Callable[[dict[str, t.Any]], None] | None) -> None: ...


class Channel:
    """The open ``greed`` comms: answers their requests, sends them events."""

    def __init__(
        self,
        service: Service,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
        on_main_thread: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self.service = service
        self.log = log or logging.getLogger(__name__)
        # How to run work on the kernel's main thread (IOLoop.add_callback, thread-safe).
        self.on_main_thread = on_main_thread
        self._lock = threading.Lock()  # open, close and notify may come from two threads
        self._comms: dict[str, Comm] = {}  # the comms that got their hello
        self._closed_early: set[str] = set()  # closed before their hello was sent
        self.methods: dict[str, Callable[[Params], t.Any]] = {
            "stats": self._stats,
            "cleanup": self._cleanup,
            "optimize": self._optimize,
            "preserve": self._preserve,
            "unpreserve": self._unpreserve,
            "vars": self._vars,
            "restore": self._restore,
            "history": self._history,
            "memory": self._memory,
            "checkpoint": self._checkpoint,
            "checkpoints": self._checkpoints,
            "resume": self._resume,
            "forget": self._forget,
        }

    def register(self, comm_manager: t.Any) -> None:
        comm_manager.register_target(TARGET, self.on_open)

    @property
    def comms(self) -> dict[str, Comm]:
        """The open comms (those that got their hello), by id: a copy."""
        with self._lock:
            return dict(self._comms)

    # -- comm callbacks ------------------------------------------------------------------
    def on_open(self, comm: Comm, open_msg: dict[str, t.Any]) -> None:
        """The comm manager's callback: listen now, say hello between cells."""
        try:
            comm.on_msg(lambda msg: self._received(comm, msg))
            comm.on_close(lambda msg: self._close(comm))
            self._between_cells(lambda: self._hello(comm))
        except Exception:
            self.log.exception("greed: opening a comm failed")

    def _received(self, comm: Comm, msg: dict[str, t.Any]) -> None:
        try:
            content = msg.get("content") if isinstance(msg, dict) else None
            data = content.get("data") if isinstance(content, dict) else None
            self._between_cells(lambda: self._answer(comm, data))
        except Exception:
            self.log.exception("greed: a comm message failed")

    def _between_cells(self, fn: Callable[[], None]) -> None:
        """Run *fn* on the main thread, once no cell is running or awaiting."""

        def when_no_cell() -> None:
            try:
                self.service.when_no_cell(fn)
            except Exception:
                self.log.exception("greed: a comm message failed")

        if self.on_main_thread is not None and threading.current_thread() is not (
            threading.main_thread()
        ):
            self.on_main_thread(when_no_cell)  # queued behind any running cell
        else:
            when_no_cell()

    def _hello(self, comm: Comm) -> None:
        with self._lock:
            if comm.comm_id in self._closed_early:
                self._closed_early.discard(comm.comm_id)
                return
        params = {
            "version": __version__,
            "stats": self.service.stats(),
            "config": self.service.settings(),
            "previousKernel": self.service.previous_kernel(),
            "resumable": self.service.resumable(),
        }
        if self._send(comm, notification("hello", params)):
            with self._lock:
                self._comms[comm.comm_id] = comm

    def _close(self, comm: Comm) -> None:
        with self._lock:
            if self._comms.pop(comm.comm_id, None) is None:
                self._closed_early.add(comm.comm_id)

    def _answer(self, comm: Comm, data: t.Any) -> None:
        response = self.handle(data)
        if response is None:
            return
        with self._lock:
            open_ = self._comms.get(comm.comm_id) is comm
        if open_:
            self._send(comm, response)

    # -- out -----------------------------------------------------------------------------
    def notify(self, method: str, params: dict[str, t.Any]) -> None:
        """Send an event to every open comm."""
        message = notification(method, params)
        for comm in self.comms.values():
            self._send(comm, message)

    def _send(self, comm: Comm, message: dict[str, t.Any]) -> bool:
        if getattr(comm, "_closed", False):  # closed by the kernel side: forget it
            with self._lock:
                self._comms.pop(comm.comm_id, None)
            return False
        try:
            comm.send(json_clean(message))
            return True
        except Exception:
            self.log.exception("greed: sending %s failed", message.get("method", "a response"))
            return False

    # -- requests ------------------------------------------------------------------------
    def handle(self, data: t.Any) -> dict[str, t.Any] | None:
        """The response to one message, or None when none is due."""
        if not isinstance(data, dict):
            what = "batches are not supported" if isinstance(data, list) else "not an object"
            return error(None, INVALID_REQUEST, f"a request must be a JSON-RPC 2.0 object: {what}")
        answered = "id" in data
        rid = data.get("id")
        if not is_id(rid):
            return error(None, INVALID_REQUEST, "'id' must be a string, an integer or null")
        # Without an id the message is a notification: run, never answered (as JSON-RPC
        # says), unless it is not a valid request at all (answered with id null).
        try:
            value = self._call(data)
        except RpcError as e:
            return error(rid, e.code, e.message) if answered or e.code == INVALID_REQUEST else None
        except Exception as e:  # never let a comm message take the kernel down
            self.log.exception("greed: comm request failed")
            message = f"request failed: {type(e).__name__}"
            return error(rid, INTERNAL_ERROR, message) if answered else None
        return result(rid, value) if answered else None

    def _call(self, data: dict[str, t.Any]) -> t.Any:
        if data.get("jsonrpc") != JSONRPC:
            raise RpcError(INVALID_REQUEST, "'jsonrpc' must be \"2.0\"")
        method = data.get("method")
        if not isinstance(method, str):
            raise RpcError(INVALID_REQUEST, "'method' must be a string")
        unknown = set(data) - {"jsonrpc", "id", "method", "params"}
        if unknown:
            raise RpcError(INVALID_REQUEST, f"unknown member {rules.quote(min(unknown))}")
        handler = self.methods.get(method)
        if handler is None:
            known = ", ".join(self.methods)
            raise RpcError(
                METHOD_NOT_FOUND, f"unknown method {rules.quote(method)}; known: {known}"
            )
        params = data.get("params", {})
        if not isinstance(params, dict):
            raise RpcError(INVALID_PARAMS, "'params' must be an object")
        return handler(params)

    def _stats(self, params: Params) -> dict[str, t.Any]:
        _no_params(params)
        return self.service.stats()

    def _cleanup(self, params: Params) -> dict[str, t.Any]:
        _no_params(params)
        return _done(self.service.cleanup("manual"), "cleanup")

    def _optimize(self, params: Params) -> dict[str, t.Any]:
        _no_params(params)
        return _done(self.service.optimize("manual"), "optimisation")

    def _preserve(self, params: Params) -> dict[str, t.Any]:
        names = _names(params)
        self.service.preserve(names)
        return _named(names)

    def _unpreserve(self, params: Params) -> dict[str, t.Any]:
        names = _names(params)
        self.service.unpreserve(names)
        return _named(names)

    def _vars(self, params: Params) -> dict[str, t.Any]:
        _no_params(params)
        rows = self.service.vars()
        return {"variables": rows[:MAX_NAMES], "omitted": max(0, len(rows) - MAX_NAMES)}

    def _restore(self, params: Params) -> dict[str, t.Any]:
        if "all" in params:
            if params != {"all": True}:
                raise RpcError(INVALID_PARAMS, "restore takes either 'names' or 'all': true")
            asked = None
        else:
            asked = _names(params)
        try:
            names = rules.restorable(self.service.paged(), asked)
        except rules.Refused as e:
            raise RpcError(INVALID_PARAMS, str(e)) from None
        nbytes = self.service.restore(names)
        return {**_named(names), "bytes": nbytes}

    def _history(self, params: Params) -> dict[str, t.Any]:
        _no_params(params)
        return {"reports": list(self.service.history())}

    def _memory(self, params: Params) -> dict[str, t.Any]:
        _no_params(params)
        return self.service.memory()

    def _checkpoint(self, params: Params) -> dict[str, t.Any]:
        _no_params(params)
        summary = self.service.checkpoint()
        if summary is None:
            raise RpcError(OPERATION_FAILED, "this kernel does not know which notebook it is")
        return summary

    def _checkpoints(self, params: Params) -> dict[str, t.Any]:
        _no_params(params)
        return {"checkpoints": self.service.checkpoints()}

    def _resume(self, params: Params) -> dict[str, t.Any]:
        unknown = set(params) - {"id"}
        if unknown:
            raise RpcError(INVALID_PARAMS, f"unknown parameter {rules.quote(min(unknown))}")
        wanted = params.get("id")
        if wanted is not None and not isinstance(wanted, str):
            raise RpcError(INVALID_PARAMS, "'id' must be a string")
        try:
            done = self.service.resume(wanted)
        except LookupError as e:
            raise RpcError(OPERATION_FAILED, str(e.args[0])) from None
        shown, omitted = capped(done["bound"])
        return {**done, "bound": shown, "omitted": omitted}

    def _forget(self, params: Params) -> dict[str, t.Any]:
        _no_params(params)
        return {"bytes": self.service.forget()}


def _no_params(params: Params) -> None:
    if params:
        raise RpcError(INVALID_PARAMS, f"no parameters expected, got {rules.quote(min(params))}")


def _done(report: dict[str, t.Any] | None, what: str) -> dict[str, t.Any]:
    if report is None:
        raise RpcError(OPERATION_FAILED, f"the {what} failed; see the kernel log")
    return report


def _named(names: list[str]) -> dict[str, t.Any]:
    shown, omitted = capped(names)
    return {"names": shown, "omitted": omitted}


def _names(params: Params) -> list[str]:
    unknown = set(params) - {"names"}
    if unknown:
        raise RpcError(INVALID_PARAMS, f"unknown parameter {rules.quote(min(unknown))}")
    try:
        return rules.check_names(params.get("names"))
    except rules.Refused as e:
        raise RpcError(INVALID_PARAMS, str(e)) from None
