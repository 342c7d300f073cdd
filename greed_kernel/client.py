"""GreedClient and AsyncGreedClient: the ``greed`` comm from Python, on a
jupyter_client blocking or asyncio client.

    from jupyter_client.manager import start_new_kernel
    from greed_kernel.client import GreedClient

    km, kc = start_new_kernel(kernel_name="greed")
    greed = GreedClient(kc)
    cleanups = []
    greed.on("execution:cleanup", cleanups.append)
    for i in range(150):
        greed.execute(f"print({i})")
    print(len(cleanups), cleanups[0]["stats"]["executionCount"])   # 1 100

Events reach callbacks while :meth:`execute`, :meth:`poll` or a request method
reads the kernel's IOPub channel. The client reads IOPub itself, so use it from
one thread, and run cells through :meth:`execute` (or pass IOPub messages you
read yourself to :meth:`handle`). This module imports no kernel code.
"""

from __future__ import annotations

import queue
import time
import typing as t
import uuid
from collections import defaultdict
from collections.abc import Callable

Callback = Callable[[dict[str, t.Any]], t.Any]
TARGET = "greed"


class GreedError(RuntimeError):
    """The kernel answered a request with an ``error`` event."""


class _GreedComm:
    """What both clients share: the comm's id, its events and the callbacks."""

    def __init__(self, kernel_client: t.Any, timeout: float) -> None:
        self.kc = kernel_client
        self.timeout = timeout
        self.comm_id = uuid.uuid4().hex
        self.closed = False
        self.hello: dict[str, t.Any] = {}
        self.events: list[dict[str, t.Any]] = []  # every event received, in order
        self._callbacks: dict[str, list[Callback]] = defaultdict(list)

    # -- events ------------------------------------------------------------------------
    def on(self, event: str, callback: Callback) -> Callback:
        """Call *callback(message)* for each *event* (or every event with ``"*"``)."""
        self._callbacks[event].append(callback)
        return callback

    def handle(self, msg: dict[str, t.Any]) -> bool:
        """Dispatch one IOPub message; True when it belonged to this comm."""
        content = msg.get("content") or {}
        if content.get("comm_id") != self.comm_id:
            return False
        kind = msg.get("header", {}).get("msg_type")
        if kind == "comm_close":
            self.closed = True
            return True
        if kind != "comm_msg":
            return False
        data = content.get("data") or {}
        self.events.append(data)
        for callback in [*self._callbacks.get(data.get("event", ""), ()), *self._callbacks["*"]]:
            callback(data)
        return True

    def _match(self, since: int, match: Callable[[dict[str, t.Any]], bool]) -> t.Any:
        return next((e for e in self.events[since:] if match(e)), None)

    def _hook(self, user_hook: Callback | None) -> Callback:
        def hook(msg: dict[str, t.Any]) -> None:
            if not self.handle(msg) and user_hook is not None:
                user_hook(msg)

        return hook

    def _send(self, msg_type: str, content: dict[str, t.Any]) -> None:
        msg = self.kc.session.msg(msg_type, {"comm_id": self.comm_id, **content})
        self.kc.shell_channel.send(msg)

    @staticmethod
    def _answer(answer: dict[str, t.Any]) -> dict[str, t.Any]:
        if answer.get("event") == "error":
            raise GreedError(answer.get("message", "error"))
        return answer


def _expecting(expect: str) -> Callable[[dict[str, t.Any]], bool]:
    return lambda e: e.get("event") in (expect, "error")


def _is_hello(event: dict[str, t.Any]) -> bool:
    return event.get("event") == "hello"


class GreedClient(_GreedComm):
    """A ``greed`` comm opened on a jupyter_client ``BlockingKernelClient``."""

    def __init__(self, kernel_client: t.Any, timeout: float = 30.0) -> None:
        super().__init__(kernel_client, timeout)
        self._send("comm_open", {"target_name": TARGET, "data": {}})
        self.hello = self.wait_for(_is_hello)

    def poll(self, timeout: float = 0.0) -> int:
        """Read IOPub for up to *timeout* seconds (0: what is already there); dispatch events."""
        handled, deadline = 0, time.monotonic() + timeout
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return handled
            handled += self.handle(msg)

    # -- cells and requests ------------------------------------------------------------
    def execute(self, code: str, timeout: float | None = None, **kwargs: t.Any) -> dict[str, t.Any]:
        """Run *code* with ``execute_interactive``, dispatching our events as they come.

        Other IOPub messages go to ``output_hook`` when given (else are dropped).
        Returns the execute reply's content.
        """
        hook = self._hook(kwargs.pop("output_hook", None))
        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=hook, **kwargs)
        return reply["content"]

    def request(self, data: dict[str, t.Any], expect: str) -> dict[str, t.Any]:
        """Send a request and wait for the *expect* event (or raise GreedError)."""
        since = len(self.events)
        self._send("comm_msg", {"data": data})
        return self._answer(self.wait_for(_expecting(expect), since=since))

    def stats(self) -> dict[str, t.Any]:
        """The kernel's STATS dict."""
        return self.request({"request": "stats"}, "stats")["stats"]

    def cleanup(self) -> dict[str, t.Any]:
        """Run a cleanup now; returns its report."""
        return self.request({"request": "cleanup"}, "execution:cleanup")["report"]

    def optimize(self) -> dict[str, t.Any]:
        """Run an optimisation now; returns its report."""
        return self.request({"request": "optimize"}, "execution:optimize")["report"]

    def preserve(self, *names: str) -> list[str]:
        """Always keep these names."""
        return self.request({"request": "preserve", "names": list(names)}, "preserved")["names"]

    def variables(self) -> list[dict[str, t.Any]]:
        """The ``%greed vars`` table as data."""
        return self.request({"request": "vars"}, "vars")["variables"]

    def close(self) -> None:
        """Close the comm (the kernel stops sending to it)."""
        if not self.closed:
            self._send("comm_close", {"data": {}})
            self.closed = True

    def __enter__(self) -> GreedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_for(
        self,
        match: Callable[[dict[str, t.Any]], bool],
        timeout: float | None = None,
        since: int = 0,
    ) -> dict[str, t.Any]:
        """The first event from ``self.events[since:]`` on that satisfies *match*,
        reading IOPub one message at a time until it arrives (TimeoutError after
        *timeout*, default the client's)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        seen = since
        while True:
            found = self._match(seen, match)
            if found is not None:
                return found
            seen = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching greed event within {timeout} s")
            try:
                msg = self.kc.get_iopub_msg(timeout=left)
            except queue.Empty:
                continue
            self.handle(msg)


class AsyncGreedClient(_GreedComm):
    """The same API on a jupyter_client ``AsyncKernelClient``; methods are coroutines.

    greed = await AsyncGreedClient.open(kc)
    greed.on("execution:cleanup", print)
    await greed.execute("x = 1")
    stats = await greed.stats()
    """

    @classmethod
    async def open(cls, kernel_client: t.Any, timeout: float = 30.0) -> AsyncGreedClient:
        """Open the comm and wait for the kernel's hello."""
        self = cls(kernel_client, timeout)
        self._send("comm_open", {"target_name": TARGET, "data": {}})
        self.hello = await self.wait_for(_is_hello)
        return self

    async def wait_for(
        self,
        match: Callable[[dict[str, t.Any]], bool],
        timeout: float | None = None,
        since: int = 0,
    ) -> dict[str, t.Any]:
        """As :meth:`GreedClient.wait_for`."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        seen = since
        while True:
            found = self._match(seen, match)
            if found is not None:
                return found
            seen = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching greed event within {timeout} s")
            try:
                msg = await self.kc.get_iopub_msg(timeout=left)
            except queue.Empty:
                continue
            self.handle(msg)

    async def execute(
        self, code: str, timeout: float | None = None, **kwargs: t.Any
    ) -> dict[str, t.Any]:
        """As :meth:`GreedClient.execute`."""
        hook = self._hook(kwargs.pop("output_hook", None))
        reply = await self.kc.execute_interactive(code, timeout=timeout, output_hook=hook, **kwargs)
        return reply["content"]

    async def request(self, data: dict[str, t.Any], expect: str) -> dict[str, t.Any]:
        """As :meth:`GreedClient.request`."""
        since = len(self.events)
        self._send("comm_msg", {"data": data})
        return self._answer(await self.wait_for(_expecting(expect), since=since))

    async def stats(self) -> dict[str, t.Any]:
        return (await self.request({"request": "stats"}, "stats"))["stats"]

    async def cleanup(self) -> dict[str, t.Any]:
        return (await self.request({"request": "cleanup"}, "execution:cleanup"))["report"]

    async def optimize(self) -> dict[str, t.Any]:
        return (await self.request({"request": "optimize"}, "execution:optimize"))["report"]

    async def close(self) -> None:
        if not self.closed:
            self._send("comm_close", {"data": {}})
            self.closed = True
