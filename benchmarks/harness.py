"""Kernels for the benchmarks: a timed kernel client, its memory, and a watchdog.

:class:`Kernel` starts one kernel of a :class:`~benchmarks.sandbox.Sandbox` through
``jupyter_client.KernelManager`` and runs cells on it, timing each from the moment
the execute_request is sent to the moment the kernel reports ``status: idle`` for it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
import typing as t
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil
from jupyter_client.manager import KernelManager

from .sandbox import Sandbox

#: The kinds of resident memory that :meth:`Kernel.memory` reports.
MEMORY_KINDS = ("rss", "anon", "file", "shmem")
_STATUS_FIELDS = {b"VmRSS:": "rss", b"RssAnon:": "anon", b"RssFile:": "file", b"RssShmem:": "shmem"}


def proc_status_memory(pid: int | str) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile and RssShmem of one process, in bytes (Linux)."""
    out = dict.fromkeys(MEMORY_KINDS, 0)
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            parts = line.split()
            kind = _STATUS_FIELDS.get(parts[0]) if parts else None
            if kind is not None:
                out[kind] = int(parts[1]) * 1024  # the file says kB
    return out


#: Under coverage, how long a kernel may take to exit by itself before it is killed.
EXIT_WAIT_S = 60.0


def under_coverage() -> bool:
    """True when coverage.py measures the processes we start (``make coverage``: its
    ``patch = subprocess`` passes its settings in this variable). A kernel must then
    exit by itself, which writes its data file; a kill would lose it."""
    return "COVERAGE_PROCESS_CONFIG" in os.environ


def request_shutdown(kc: t.Any, timeout: float = 10.0) -> bool:
    """Ask a kernel to shut down on the control channel and wait for the reply (at most
    *timeout* seconds); True if it came.

    The kernel has then run its ``do_shutdown``: what is left is the interpreter's
    exit, which a client may cut short with a kill (jupyter_client's
    ``KernelClient.shutdown`` says so). For a kernel that imported torch the graceful
    shutdown took 1.4 to 1.7 s here, against 0.12 s this way; the interpreter's exit
    after ``import torch`` alone costs about 0.7 s of CPU."""
    msg_id = kc.shutdown()
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = kc.get_control_msg(timeout=left)
        except queue.Empty:
            return False
        if msg["parent_header"].get("msg_id") == msg_id:
            return True
    return False


@dataclass
class Run:
    """One execute_request: its outcome and timing."""

    status: str  # "ok" or "error" (from the shell reply)
    latency_s: float  # execute_request sent -> status idle received
    #: execute_request sent -> the kernel began handling it (the reply's ``started``,
    #: the same machine's clock): the wait for what the kernel was doing before
    wait_s: float | None = None
    result: str | None = None  # text/plain of the execute_result
    error: str | None = None  # ename of the error, if any
    stdout: str = ""
    reply: dict[str, t.Any] = field(default_factory=dict)


def _since(started: t.Any, sent: float) -> float | None:
    """Seconds from *sent* (time.time()) to an ISO-8601 ``started`` stamp, or None."""
    try:
        return datetime.fromisoformat(str(started)).timestamp() - sent
    except ValueError:
        return None


class KernelError(RuntimeError):
    """A kernel did not answer as expected."""


class Kernel:
    """One kernel process (started from the sandbox's specs) and a blocking client."""

    def __init__(
        self,
        sandbox: Sandbox,
        spec: str,
        label: str | None = None,
        extra_arguments: t.Sequence[str] = (),
    ) -> None:
        self.sandbox = sandbox
        self.spec = spec
        self.label = label or spec
        self.extra_arguments = list(extra_arguments)
        self.km = KernelManager(kernel_name=spec, kernel_spec_manager=sandbox.spec_manager())
        self.kc: t.Any = None
        self._proc: psutil.Process | None = None
        self._children: list[psutil.Process] = []
        self._children_at = -1e9
        self._log: t.BinaryIO | None = None
        self.log_path: Path | None = None

    # -- lifecycle --------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> float:
        """Start the kernel and wait until it answers kernel_info; returns the seconds."""
        env = self.sandbox.kernel_env()
        self.log_path = Path(env["IPYTHONDIR"]) / "kernel.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in shutdown)
        t0 = time.perf_counter()
        self.km.start_kernel(
            extra_arguments=self.extra_arguments, env=env, stdout=self._log, stderr=self._log
        )
        kc = self.km.client()
        kc.start_channels()
        self.kc = kc
        try:
            kc.wait_for_ready(timeout=timeout)
        except RuntimeError as e:
            raise KernelError(f"{self.label}: {e}\n{self.log_tail()}") from None
        elapsed = time.perf_counter() - t0
        self._proc = psutil.Process(self.pid)
        return elapsed

    @property
    def pid(self) -> int:
        provisioner = getattr(self.km, "provisioner", None)
        process = getattr(provisioner, "process", None)
        if process is not None:
            return int(process.pid)
        return int(self.km.kernel.pid)  # older jupyter_client

    def shutdown(self) -> None:
        """Stop the kernel: a shutdown request, and a kill once it is answered (see
        :func:`request_shutdown`)."""
        kc, self.kc = self.kc, None
        if kc is not None:
            with contextlib.suppress(Exception):
                if self.km.has_kernel and self.km.is_alive():  # (dead: no one answers)
                    request_shutdown(kc)
            with contextlib.suppress(Exception):
                kc.stop_channels()
        if self.km.has_kernel:
            measured = under_coverage()
            if measured:
                self.km.shutdown_wait_time = max(self.km.shutdown_wait_time, EXIT_WAIT_S)
            self.km.shutdown_kernel(now=not measured)
        with contextlib.suppress(Exception):
            self.km.cleanup_resources()
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL the kernel and its children at once, as the OOM killer would."""
        for p in reversed(self._processes()):
            with contextlib.suppress(psutil.Error):
                p.kill()

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the kernel's stdout/stderr (for error messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except (OSError, AttributeError):
            return ""

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- memory -----------------------------------------------------------------------
    def _processes(self) -> list[psutil.Process]:
        """The kernel and its children (the list refreshed every second)."""
        proc = self._proc
        if proc is None:
            return []
        now = time.monotonic()
        if now - self._children_at >= 1.0:
            try:
                self._children = proc.children(recursive=True)
            except psutil.Error:
                self._children = []
            self._children_at = now
        return [proc, *self._children]

    def memory(self) -> dict[str, int]:
        """Resident memory of the kernel plus its children, in bytes, by kind.

        From /proc/PID/status: ``rss`` (VmRSS, the total), ``anon`` (RssAnon: private
        anonymous memory, what paging moves out), ``file`` (RssFile: file-backed
        pages mapped in, including pages of paged-out memory once read back) and
        ``shmem`` (RssShmem). rss = anon + file + shmem.
        """
        total = dict.fromkeys(MEMORY_KINDS, 0)
        for p in self._processes():
            with contextlib.suppress(OSError, ValueError):
                for kind, value in proc_status_memory(p.pid).items():
                    total[kind] += value
        return total

    def rss(self) -> int:
        """Total RSS of the kernel process plus its children."""
        return self.memory()["rss"]

    def anon(self) -> int:
        """Anonymous resident memory (RssAnon + RssShmem) of the kernel and its children."""
        m = self.memory()
        return m["anon"] + m["shmem"]

    # -- execution --------------------------------------------------------------------
    def run(
        self,
        code: str,
        *,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
        timeout: float = 600.0,
    ) -> Run:
        """Execute ``code`` and wait for its idle status and reply."""
        kc = self.kc
        if kc is None:
            raise KernelError(f"{self.label}: not started")
        sent, t0 = time.time(), time.perf_counter()
        msg_id = kc.execute(
            code,
            silent=silent,
            store_history=store_history,
            user_expressions=user_expressions or {},
            allow_stdin=False,
        )
        deadline = time.monotonic() + timeout
        result = error = None
        stdout: list[str] = []
        while True:
            msg = self._get(kc.get_iopub_msg, deadline, "idle status")
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            content = msg["content"]
            if kind == "status" and content["execution_state"] == "idle":
                latency = time.perf_counter() - t0
                break
            if kind == "execute_result":
                result = content["data"].get("text/plain")
            elif kind == "error":
                error = content.get("ename")
            elif kind == "stream" and content.get("name") == "stdout":
                stdout.append(content.get("text", ""))
        while True:
            reply = self._get(kc.get_shell_msg, deadline, "execute_reply")
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        content = reply["content"]
        return Run(
            status=content.get("status", ""),
            latency_s=latency,
            wait_s=_since(reply.get("metadata", {}).get("started"), sent),
            result=result,
            error=error,
            stdout="".join(stdout),
            reply=content,
        )

    def _get(self, getter: t.Callable[..., t.Any], deadline: float, what: str) -> t.Any:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise KernelError(f"{self.label}: no {what} in time")
            try:
                return getter(timeout=min(left, 0.5))  # then: is it still alive?
            except queue.Empty:
                if not self.km.is_alive():
                    raise KernelError(f"{self.label}: died\n{self.log_tail()}") from None

    def must_run(self, code: str, **kwargs: t.Any) -> Run:
        """Execute ``code``; raise KernelError unless it succeeded."""
        run = self.run(code, **kwargs)
        if run.status != "ok":
            evalue = run.reply.get("evalue", "")
            raise KernelError(f"{self.label}: cell failed ({run.reply.get('ename')}: {evalue})")
        return run

    def evaluate(self, **expressions: str) -> dict[str, str]:
        """text/plain of each user expression (run silently); raise if one failed."""
        run = self.run("", silent=True, store_history=False, user_expressions=expressions)
        out = {}
        for key, value in run.reply.get("user_expressions", {}).items():
            if value.get("status") != "ok":
                raise KernelError(
                    f"{self.label}: {expressions[key]!r} failed: "
                    f"{value.get('ename')}: {value.get('evalue')}"
                )
            out[key] = value["data"]["text/plain"]
        return out


class Watchdog:
    """Kill a kernel as soon as its anonymous RSS (RssAnon + RssShmem, with its
    children) passes ``limit`` bytes, checked every ``interval`` seconds from a
    thread, as an OOM killer would with a memory limit on that memory.

    ``killed`` is then ``(bytes seen, seconds since start)``; ``peak`` is the most
    anonymous memory seen.
    """

    def __init__(self, kernel: Kernel, limit: int, interval: float = 0.02) -> None:
        self.kernel = kernel
        self.limit = limit
        self.interval = interval
        self.killed: tuple[int, float] | None = None
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)

    def _watch(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            anon = self.kernel.anon()
            self.peak = max(self.peak, anon)
            if anon > self.limit:
                self.killed = (anon, time.monotonic() - t0)
                self.kernel.kill()
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
