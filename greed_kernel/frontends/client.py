"""GreedClient and AsyncGreedClient: the ``greed`` comm from Python, on a
jupyter_client blocking or asyncio client.

    from jupyter_client.manager import start_new_kernel
    from greed_kernel.frontends.client import GreedClient

    km, kc = start_new_kernel(kernel_name="greed")
    greed = GreedClient(kc)
    cleanups = []
    greed.on("execution:cleanup", cleanups.append)
    for i in range(150):
        greed.execute(f"print({i})")
    print(len(cleanups), cleanups[0]["stats"]["executionCount"])   # 1 100

The comm speaks JSON-RPC 2.0 (``protocol.schema.json``): only the response with a
request's id answers it. Events (notifications) reach callbacks, and ``events``, as
``{"event": method, **params}``, while :meth:`execute`, :meth:`poll` or a request
reads the kernel's IOPub channel. The client reads IOPub itself: use one client per
kernel client, from one thread, and run cells through :meth:`execute` (or hand it the
IOPub messages you read yourself: :meth:`handle`).

:class:`AsyncGreedClient` holds the logic; :class:`GreedClient` runs its coroutines
to completion (nbclient's ``run_sync`` pattern), on either kind of jupyter_client
client. This module imports no kernel code.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import queue
import time
import typing as t
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine

from jupyter_core.utils import ensure_async, run_sync

from . import protocol
from .calls import NamedCalls
from .protocol import TARGET

Callback = Callable[[dict[str, t.Any]], t.Any]
_FROM_DATA = object()


class GreedError(RuntimeError):
    """The kernel answered a request with an error: ``code`` and ``message``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class AsyncGreedClient(NamedCalls):
    """A ``greed`` comm on a jupyter_client kernel client; methods are coroutines.

    greed = await AsyncGreedClient.open(kc)
    greed.on("execution:cleanup", print)
    await greed.execute("x = 1")
    stats = await greed.stats()
    """

    def __init__(self, kernel_client: t.Any, timeout: float = 30.0) -> None:
        """Not opened yet: use :meth:`open` (or ``await client.start()``)."""
        self.kc = kernel_client
        self.timeout = timeout
        self.comm_id = uuid.uuid4().hex
        self.closed = False
        self.hello: dict[str, t.Any] = {}
        #: Every event received, in order, as ``{"event": method, **params}``.
        self.events: list[dict[str, t.Any]] = []
        #: Responses whose id is no request of ours that is waiting (there should be none).
        self.unmatched: list[t.Any] = []
        self._callbacks: dict[str, list[Callback]] = defaultdict(list)
        self._ids = itertools.count(1)
        self._waiting: set[t.Any] = set()
        self._responses: dict[t.Any, dict[str, t.Any]] = {}
        self._reading: asyncio.Lock | None = None

    @classmethod
    async def open(cls, kernel_client: t.Any, timeout: float = 30.0) -> AsyncGreedClient:
        """Open the comm and wait for the kernel's hello."""
        self = cls(kernel_client, timeout)
        await self.start()
        return self

    async def start(self) -> dict[str, t.Any]:
        """Open the comm; returns the hello (``{"event": "hello", "version", "stats",
        "config"}``)."""
        self._send("comm_open", {"target_name": TARGET, "data": {}})
        self.hello = await self.wait_for(lambda e: e.get("event") == "hello")
        return self.hello

    # -- events ------------------------------------------------------------------------
    def on(self, event: str, callback: Callback) -> Callback:
        """Call *callback(event)* for each *event* (or every event with ``"*"``)."""
        self._callbacks[event].append(callback)
        return callback

    def handle(self, msg: dict[str, t.Any]) -> bool:
        """Take one IOPub message; True when it belonged to this comm."""
        content = msg.get("content") or {}
        if content.get("comm_id") != self.comm_id:
            return False
        kind = msg.get("header", {}).get("msg_type")
        if kind == "comm_close":
            self.closed = True
            return True
        if kind != "comm_msg":
            return False
        data = content.get("data")
        if protocol.is_notification(data):
            params = data.get("params")
            event = {"event": data["method"], **(params if isinstance(params, dict) else {})}
            self.events.append(event)
            for callback in [*self._callbacks.get(event["event"], ()), *self._callbacks["*"]]:
                callback(event)
        elif protocol.is_response(data) and _key(data["id"]) in self._waiting:
            self._waiting.discard(_key(data["id"]))
            self._responses[_key(data["id"])] = data
        else:
            self.unmatched.append(data)
        return True

    async def wait_for(
        self,
        match: Callable[[dict[str, t.Any]], bool],
        timeout: float | None = None,
        since: int = 0,
    ) -> dict[str, t.Any]:
        """The first event from ``self.events[since:]`` on that satisfies *match*,
        reading IOPub until it arrives (TimeoutError after *timeout*, default the
        client's)."""
        seen = since

        def found() -> dict[str, t.Any] | None:
            nonlocal seen
            hit = next((e for e in self.events[seen:] if match(e)), None)
            seen = len(self.events)
            return hit

        return await self._read_until(found, timeout, "no matching greed event")

    async def poll(self, timeout: float = 0.0) -> int:
        """Read IOPub for *timeout* seconds (0: what is already there); dispatch events.
        Returns how many messages were this comm's."""
        handled, deadline = 0, time.monotonic() + timeout
        while True:
            msg = await self._next(max(0.0, deadline - time.monotonic()))
            if msg is None:
                return handled
            handled += self.handle(msg)

    # -- cells ---------------------------------------------------------------------------
    async def execute(
        self, code: str, timeout: float | None = None, **kwargs: t.Any
    ) -> dict[str, t.Any]:
        """Run *code*; our events are dispatched as they come, whatever request they
        follow. The cell's own IOPub messages go to ``output_hook`` when given (else are
        dropped). Other keyword arguments go to the kernel client's ``execute``
        (``allow_stdin`` defaults to False). Returns the execute reply's content."""
        hook: Callback | None = kwargs.pop("output_hook", None)
        kwargs.setdefault("allow_stdin", False)
        deadline = None if timeout is None else time.monotonic() + timeout
        msg_id = await ensure_async(self.kc.execute(code, **kwargs))
        idle = False
        while not idle:
            left = 3600.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Timeout waiting for output")
            async with self._lock():
                msg = await self._next(left)
            if msg is None or self.handle(msg):
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue  # another request's output
            if hook is not None:
                hook(msg)
            idle = msg["header"]["msg_type"] == "status" and (
                msg["content"]["execution_state"] == "idle"
            )
        while True:
            left = 3600.0 if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                reply = await ensure_async(self.kc.get_shell_msg(timeout=left))
            except queue.Empty:
                raise TimeoutError("Timeout waiting for the execute reply") from None
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                return t.cast(dict[str, t.Any], reply["content"])

    # -- requests ------------------------------------------------------------------------
    async def request(
        self, method: str, params: dict[str, t.Any] | None = None, timeout: float | None = None
    ) -> t.Any:
        """Call *method*; its result, or GreedError with the kernel's error."""
        rid = f"{self.comm_id[:8]}-{next(self._ids)}"
        response = await self.call(protocol.request(rid, method, params), timeout)
        error = response.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            raise GreedError(
                code if isinstance(code, int) else protocol.INTERNAL_ERROR,
                message if isinstance(message, str) else "error",
            )
        return response.get("result")

    async def call(
        self, data: t.Any, timeout: float | None = None, reply_id: t.Any = _FROM_DATA
    ) -> dict[str, t.Any]:
        """Send *data* as it is (any JSON) and return the whole response with
        *reply_id*: by default the id *data* carries, or null when it has none that the
        kernel can read (the id of the answer to a malformed message)."""
        if reply_id is _FROM_DATA:
            rid = data.get("id") if isinstance(data, dict) else None
            reply_id = rid if protocol.is_id(rid) else None
        key = _key(reply_id)
        self._waiting.add(key)
        try:
            self._send("comm_msg", {"data": data})
            return await self._read_until(
                lambda: self._responses.pop(key, None), timeout, f"no answer to {reply_id!r}"
            )
        finally:
            self._waiting.discard(key)

    async def send(self, data: t.Any) -> None:
        """Send *data* on the comm as it is, expecting no answer."""
        self._send("comm_msg", {"data": data})

    async def close(self) -> None:
        """Close the comm (the kernel stops sending to it)."""
        if not self.closed:
            self._send("comm_close", {"data": {}})
            self.closed = True

    async def __aenter__(self) -> AsyncGreedClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- reading -------------------------------------------------------------------------
    def _send(self, msg_type: str, content: dict[str, t.Any]) -> None:
        msg = self.kc.session.msg(msg_type, {"comm_id": self.comm_id, **content})
        self.kc.shell_channel.send(msg)

    def _lock(self) -> asyncio.Lock:
        # One reader of IOPub at a time (requests awaited together share it).
        if self._reading is None:
            self._reading = asyncio.Lock()
        return self._reading

    async def _next(self, timeout: float) -> dict[str, t.Any] | None:
        """The next IOPub message, or None after *timeout* seconds."""
        try:
            return t.cast(
                dict[str, t.Any], await ensure_async(self.kc.get_iopub_msg(timeout=timeout))
            )
        except queue.Empty:
            return None

    async def _read_until(
        self, found: Callable[[], t.Any], timeout: float | None, what: str
    ) -> t.Any:
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            hit = found()
            if hit is not None:
                return hit
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what} within {timeout} s")
            async with self._lock():
                hit = found()  # another reader may have read it meanwhile
                if hit is not None:
                    return hit
                msg = await self._next(left)
            if msg is not None:
                self.handle(msg)


def _key(rid: t.Any) -> t.Any:
    """A response id as a dict key (ids are strings, integers or null)."""
    return rid if protocol.is_id(rid) else None


R = t.TypeVar("R")


def _blocking(coro: Callable[..., Coroutine[t.Any, t.Any, R]]) -> Callable[..., R]:
    """A method of GreedClient that runs *coro* on its AsyncGreedClient to completion."""

    @functools.wraps(coro)
    def method(self: GreedClient, *args: t.Any, **kwargs: t.Any) -> R:
        return t.cast(R, run_sync(coro)(self.client, *args, **kwargs))

    return method


class GreedClient:
    """A ``greed`` comm opened on a jupyter_client ``BlockingKernelClient``: the
    methods of :class:`AsyncGreedClient`, blocking."""

    def __init__(self, kernel_client: t.Any, timeout: float = 30.0) -> None:
        self.client = AsyncGreedClient(kernel_client, timeout)
        run_sync(self.client.start)()

    @property
    def kc(self) -> t.Any:
        return self.client.kc

    @property
    def comm_id(self) -> str:
        return self.client.comm_id

    @property
    def closed(self) -> bool:
        return self.client.closed

    @property
    def hello(self) -> dict[str, t.Any]:
        return self.client.hello

    @property
    def events(self) -> list[dict[str, t.Any]]:
        return self.client.events

    @property
    def unmatched(self) -> list[t.Any]:
        return self.client.unmatched

    def on(self, event: str, callback: Callback) -> Callback:
        """Call *callback(event)* for each *event* (or every event with ``"*"``)."""
        return self.client.on(event, callback)

    def handle(self, msg: dict[str, t.Any]) -> bool:
        """Take one IOPub message; True when it belonged to this comm."""
        return self.client.handle(msg)

    wait_for = _blocking(AsyncGreedClient.wait_for)
    poll = _blocking(AsyncGreedClient.poll)
    execute = _blocking(AsyncGreedClient.execute)
    request = _blocking(AsyncGreedClient.request)
    call = _blocking(AsyncGreedClient.call)
    send = _blocking(AsyncGreedClient.send)
    stats = _blocking(AsyncGreedClient.stats)
    cleanup = _blocking(AsyncGreedClient.cleanup)
    optimize = _blocking(AsyncGreedClient.optimize)
    preserve = _blocking(AsyncGreedClient.preserve)
    unpreserve = _blocking(AsyncGreedClient.unpreserve)
    vars = _blocking(AsyncGreedClient.vars)
    restore = _blocking(AsyncGreedClient.restore)
    history = _blocking(AsyncGreedClient.history)
    checkpoint = _blocking(AsyncGreedClient.checkpoint)
    checkpoints = _blocking(AsyncGreedClient.checkpoints)
    resume = _blocking(AsyncGreedClient.resume)
    forget = _blocking(AsyncGreedClient.forget)
    close = _blocking(AsyncGreedClient.close)

    def __enter__(self) -> GreedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
