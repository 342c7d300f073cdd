"""Drive a real Greed kernel process through jupyter_client, for tests.

``KernelHarness("--GreedKernel.cleanup_interval=5")`` starts the kernel spec
named ``greed`` (the sandboxed one that conftest installs) with extra command
line arguments and waits until it answers (``output``: a file for the process's own
stdout and stderr). ``execute`` sends a cell and
collects everything the kernel published for it on iopub up to its
``status: idle``, and the shell reply. Comm messages seen on iopub, whatever
request they belong to, are also kept in ``comm_messages``. ``cwd`` is the
kernel's working directory; other keyword arguments go to the KernelManager
(``transport_encryption="required"``, ``kernel_spec_manager=...``).
"""

from __future__ import annotations

import contextlib
import os
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from benchmarks.harness import EXIT_WAIT_S, request_shutdown, under_coverage

OUTPUT_TYPES = frozenset(
    {"stream", "display_data", "update_display_data", "execute_result", "error", "clear_output"}
)
COMM_TYPES = frozenset({"comm_open", "comm_msg", "comm_close"})


@dataclass
class ExecResult:
    """What one execute_request produced."""

    msg_id: str
    reply: dict[str, Any]
    outputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.reply.get("status", "")

    def _stream(self, name: str) -> str:
        return "".join(
            m["content"]["text"]
            for m in self.outputs
            if m["msg_type"] == "stream" and m["content"]["name"] == name
        )

    @property
    def stdout(self) -> str:
        return self._stream("stdout")

    @property
    def stderr(self) -> str:
        return self._stream("stderr")

    @property
    def data(self) -> str | None:
        """text/plain of the execute_result, if any."""
        for m in self.outputs:
            if m["msg_type"] == "execute_result":
                return m["content"]["data"].get("text/plain")
        return None

    @property
    def error(self) -> dict[str, Any] | None:
        """ename / evalue / traceback of the error output, if any."""
        for m in self.outputs:
            if m["msg_type"] == "error":
                c = m["content"]
                return {"ename": c["ename"], "evalue": c["evalue"], "traceback": c["traceback"]}
        return None

    def __repr__(self) -> str:  # short, for assertion messages
        return (
            f"ExecResult(status={self.status!r}, data={self.data!r}, "
            f"stdout={self.stdout!r}, stderr={self.stderr[-500:]!r}, error={self.error!r})"
        )


class KernelHarness:
    """One kernel process and a blocking client connected to it."""

    def __init__(
        self,
        *extra_arguments: str,
        kernel_name: str = "greed",
        startup_timeout: float = 60,
        cwd: str | None = None,
        output: Any = None,
        env: dict[str, str] | None = None,
        **manager_kwargs: Any,
    ) -> None:
        self.comm_messages: list[dict[str, Any]] = []
        self.km = KernelManager(kernel_name=kernel_name, **manager_kwargs)
        self.kc: BlockingKernelClient | None = None
        try:
            launch: dict[str, Any] = {"cwd": cwd} if cwd else {}
            if output is not None:  # a file for the process's stdout and stderr
                launch.update(stdout=output, stderr=output)
            if env is not None:  # added to this process's environment
                launch["env"] = {**os.environ, **env}
            self.km.start_kernel(extra_arguments=list(extra_arguments), **launch)
            self._connect(startup_timeout)
        except BaseException:
            self.shutdown()
            raise

    def _connect(self, timeout: float) -> None:
        kc = self.km.client()
        kc.start_channels()
        self.kc = kc
        kc.wait_for_ready(timeout=timeout)

    # -- iopub ------------------------------------------------------------------------
    def _next_iopub(self, deadline: float) -> dict[str, Any]:
        assert self.kc is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no message from the kernel in time")
        try:
            msg = self.kc.get_iopub_msg(timeout=remaining)
        except queue.Empty:
            raise TimeoutError("no message from the kernel in time") from None
        if msg["msg_type"] in COMM_TYPES:
            self.comm_messages.append(msg)
        return msg

    def iopub_until(
        self,
        msg_id: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 60,
        collect: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Read iopub until a message of request ``msg_id`` satisfies ``predicate``.

        Output messages of that request read on the way are appended to ``collect``.
        """
        deadline = time.monotonic() + timeout
        while True:
            msg = self._next_iopub(deadline)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if collect is not None and msg["msg_type"] in OUTPUT_TYPES:
                collect.append(msg)
            if predicate(msg):
                return msg

    def drain_iopub(self, timeout: float = 0.2) -> None:
        """Read what is waiting on iopub (keeping comm messages)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._next_iopub(deadline)
        except TimeoutError:
            pass

    @staticmethod
    def is_status(state: str) -> Callable[[dict[str, Any]], bool]:
        return lambda m: m["msg_type"] == "status" and m["content"]["execution_state"] == state

    # -- execution --------------------------------------------------------------------
    def submit(
        self,
        code: str,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
    ) -> str:
        """Send an execute_request without waiting; returns its msg_id."""
        assert self.kc is not None
        return self.kc.execute(
            code,
            silent=silent,
            store_history=store_history,
            user_expressions=user_expressions,
            allow_stdin=False,
        )

    def shell_reply(self, msg_id: str, timeout: float = 60) -> dict[str, Any]:
        assert self.kc is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no shell reply to {msg_id}")
            try:
                msg = self.kc.get_shell_msg(timeout=remaining)
            except queue.Empty:
                raise TimeoutError(f"no shell reply to {msg_id}") from None
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg

    def collect(self, msg_id: str, timeout: float = 60) -> ExecResult:
        """Outputs of ``msg_id`` up to its idle status, and its shell reply."""
        outputs: list[dict[str, Any]] = []
        self.iopub_until(msg_id, self.is_status("idle"), timeout, collect=outputs)
        reply = self.shell_reply(msg_id, timeout)
        return ExecResult(msg_id=msg_id, reply=reply["content"], outputs=outputs)

    def execute(
        self,
        code: str,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> ExecResult:
        msg_id = self.submit(code, silent, store_history, user_expressions)
        return self.collect(msg_id, timeout)

    def eval(self, expr: str, timeout: float = 60) -> str:
        """text/plain of ``expr`` evaluated as a user expression (silently)."""
        result = self.execute("", silent=True, user_expressions={"x": expr}, timeout=timeout)
        value = result.reply["user_expressions"]["x"]
        if value["status"] != "ok":
            raise AssertionError(f"{expr!r} failed: {value.get('ename')}: {value.get('evalue')}")
        return value["data"]["text/plain"]

    def request(
        self, msg_type: str, content: dict[str, Any], channel: str = "shell", timeout: float = 30
    ) -> dict[str, Any]:
        """Send a request on the shell or control channel and return the reply message."""
        assert self.kc is not None
        msg = self.kc.session.msg(msg_type, content)
        chan = self.kc.control_channel if channel == "control" else self.kc.shell_channel
        chan.send(msg)
        msg_id = msg["header"]["msg_id"]
        deadline = time.monotonic() + timeout
        get = self.kc.get_control_msg if channel == "control" else self.kc.get_shell_msg
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no reply to {msg_type}")
            try:
                reply = get(timeout=remaining)
            except queue.Empty:
                raise TimeoutError(f"no reply to {msg_type}") from None
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    # -- lifecycle --------------------------------------------------------------------
    def restart(self, timeout: float = 60) -> None:
        """Restart the kernel process and reconnect a fresh client."""
        if self.kc is not None:
            self.kc.stop_channels()
            self.kc = None
        self.km.restart_kernel(now=False)
        self._connect(timeout)

    def shutdown(self, *, graceful: bool = False) -> None:
        """Stop the kernel. By default: a shutdown request on the control channel, and
        once its reply came (the kernel's ``do_shutdown`` has run), a kill, as
        jupyter_client's ``KernelClient.shutdown`` says a client may: the interpreter's
        own exit, which took 1.4 to 1.7 s for a kernel that imported torch, is skipped.
        *graceful*: the kernel exits by itself, as a frontend's shutdown leaves it to
        (what tests of the exit itself use, and every test under ``make coverage``)."""
        if under_coverage():
            graceful = True
            # jupyter_client kills a kernel still alive after shutdown_wait_time (5 s);
            # on loaded cores, and saving its data, a kernel can take longer
            self.km.shutdown_wait_time = max(self.km.shutdown_wait_time, EXIT_WAIT_S)
        kc, self.kc = self.kc, None
        if kc is not None:
            if not graceful and self.km.has_kernel and self.km.is_alive():
                with contextlib.suppress(Exception):  # not answered: killed all the same
                    request_shutdown(kc)
            kc.stop_channels()
        if self.km.has_kernel:
            try:
                self.km.shutdown_kernel(now=not graceful)
            except Exception:
                self.km.shutdown_kernel(now=True)
        self.km.cleanup_resources()

    def __enter__(self) -> KernelHarness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
