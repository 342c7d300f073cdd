"""Kernels for the benchmarks: a private Jupyter sandbox and a timed kernel client.

The sandbox is a temporary directory holding two kernel specs, both run by this
interpreter: ``python3`` (written by ``python -m ipykernel install --prefix``,
exactly what users of the stock kernel get) and ``greed`` (written by
``greed_kernel.kernelspec.write_kernel_spec``). Jupyter, IPython and matplotlib
read and write only inside it, and every kernel gets its own IPython directory
(its own history database), as a kernel does in real use.

:class:`Kernel` starts one kernel through ``jupyter_client.KernelManager`` and
runs cells on it, timing each from the moment the execute_request is sent to
the moment the kernel reports ``status: idle`` for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from greed_kernel.kernelspec import write_kernel_spec

#: Environment variables that point Jupyter, IPython and matplotlib into the sandbox.
_SANDBOX_DIRS = {
    "HOME": "home",
    "JUPYTER_DATA_DIR": "data",
    "JUPYTER_CONFIG_DIR": "config",
    "JUPYTER_RUNTIME_DIR": "runtime",
    "JUPYTER_PATH": "path",
    "IPYTHONDIR": "ipython",
    "MPLCONFIGDIR": "mpl",
}


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


#: What the ``python3-greed-modules`` kernel runs: ipykernel_launcher's own steps (drop
#: the empty path entry, launch IPKernelApp), after importing greed's modules.
GREED_MODULES_LAUNCHER = (
    "import sys\n"
    "if sys.path and sys.path[0] == '': del sys.path[0]\n"
    "import greed_kernel.kernel, greed_kernel.engine.greed\n"
    "import greed_kernel.frontends.channel, greed_kernel.frontends.magics\n"
    "from ipykernel.kernelapp import launch_new_instance\n"
    "launch_new_instance()"
)


class Sandbox:
    """A temporary Jupyter environment with the ``python3`` and ``greed`` specs."""

    def __init__(self, root: str | Path | None = None) -> None:
        self._own = root is None
        self.root = Path(tempfile.mkdtemp(prefix="greed-bench-") if root is None else root)
        self.env: dict[str, str] = dict(os.environ)
        for var, sub in _SANDBOX_DIRS.items():
            path = self.root / sub
            path.mkdir(parents=True, exist_ok=True)
            self.env[var] = str(path)
        self.env["JUPYTER_PLATFORM_DIRS"] = "1"
        # One thread per kernel everywhere (the workload also sets it in torch): the
        # kernels take turns, and a 2-core machine must not be oversubscribed.
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            self.env[var] = "1"
        self.env.pop("MPLBACKEND", None)  # the workload picks Agg itself
        prefix = self.root / "prefix"
        subprocess.run(
            [sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix)],
            check=True,
            env=self.env,
            capture_output=True,
        )
        self.kernels_dir = prefix / "share" / "jupyter" / "kernels"
        write_kernel_spec(self.kernels_dir / "greed", executable=sys.executable)
        self._write_greed_modules_spec()
        self._kernel_count = 0
        self._saved_environ: dict[str, str] | None = None

    def _write_greed_modules_spec(self) -> None:
        """``python3-greed-modules``: the python3 spec, its kernel (IPythonKernel, nothing
        of greed running) started the way ipykernel_launcher starts it, after importing
        the modules a greed kernel imports."""
        spec = json.loads((self.kernels_dir / "python3" / "kernel.json").read_text("utf-8"))
        argv = spec["argv"]
        at = argv.index("-m")
        argv[at : at + 2] = ["-c", GREED_MODULES_LAUNCHER]
        spec["display_name"] = "Python 3 (ipykernel), greed's modules imported"
        target = self.kernels_dir / "python3-greed-modules"
        target.mkdir(exist_ok=True)
        (target / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")

    def activate(self) -> None:
        """Make this process use the sandbox too (connection files, runtime dir)."""
        if self._saved_environ is None:
            self._saved_environ = dict(os.environ)
            os.environ.update(self.env)

    def spec_manager(self) -> KernelSpecManager:
        """A spec manager that sees the sandbox's two specs and nothing else."""
        return KernelSpecManager(kernel_dirs=[str(self.kernels_dir)], ensure_native_kernel=False)

    def kernel_env(self) -> dict[str, str]:
        """The environment of a new kernel: the sandbox's, with a private IPython dir."""
        self._kernel_count += 1
        ipython_dir = self.root / "ipython" / f"kernel-{self._kernel_count}"
        ipython_dir.mkdir(parents=True, exist_ok=True)
        return {**self.env, "IPYTHONDIR": str(ipython_dir)}

    def cleanup(self) -> None:
        if self._saved_environ is not None:
            os.environ.clear()
            os.environ.update(self._saved_environ)
            self._saved_environ = None
        if self._own:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


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
    after ``import torch`` alone costs about 0.7 s of CPU (see the README's test
    section)."""
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
    result: str | None = None  # text/plain of the execute_result
    error: str | None = None  # ename of the error, if any
    stdout: str = ""
    reply: dict[str, t.Any] = field(default_factory=dict)


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
        t0 = time.perf_counter()
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
