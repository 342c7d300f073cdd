"""The Greed kernel is a working Jupyter kernel: real processes, real messages."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
from pathlib import Path

import pytest
import zmq
from jupyter_client.blocking.client import BlockingKernelClient

import greed_kernel

from kernel_harness import KernelHarness

pytestmark = pytest.mark.timeout(120)


def test_execute_expression(kernel: KernelHarness) -> None:
    result = kernel.execute("1+1")
    assert result.status == "ok", result
    assert result.data == "2"
    assert [m["msg_type"] for m in result.outputs] == ["execute_result"]


def test_stdout_stderr_and_error(kernel: KernelHarness) -> None:
    result = kernel.execute("import sys; print('out'); print('err', file=sys.stderr); 1/0")
    assert result.status == "error"
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.error is not None and result.error["ename"] == "ZeroDivisionError"
    assert result.reply["ename"] == "ZeroDivisionError"


def test_kernel_info(kernel: KernelHarness) -> None:
    info = kernel.request("kernel_info_request", {})["content"]
    assert info["status"] == "ok"
    assert info["implementation"] == "greed"
    assert info["implementation_version"] == greed_kernel.__version__
    assert info["language_info"]["name"] == "python"
    assert "Greed" in info["banner"]
    assert "debugger" in info["supported_features"]


def test_context_preserved_across_cells(kernel: KernelHarness) -> None:
    """Greed.js's example: a model built in one cell is trained in the next."""
    setup = kernel.execute(
        "import torch, torch.nn as nn\n"
        "torch.manual_seed(0)\n"
        "model = nn.Linear(10, 1)\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.01)"
    )
    assert setup.status == "ok", setup
    step = kernel.execute(
        "w0 = model.weight.detach().clone()\n"
        "x, y = torch.randn(32, 10), torch.randn(32, 1)\n"
        "loss = nn.functional.mse_loss(model(x), y)\n"
        "optimizer.zero_grad()\n"
        "loss.backward()\n"
        "optimizer.step()\n"
        "print(f'loss={loss.item():.4f}')\n"
        "bool((model.weight != w0).any())"
    )
    assert step.status == "ok", step
    assert step.stdout.startswith("loss=")
    assert step.data == "True"
    assert kernel.eval("type(optimizer).__name__") == "'SGD'"


def test_interrupt(kernel: KernelHarness) -> None:
    msg_id = kernel.submit("import time\nprint('sleeping', flush=True)\ntime.sleep(30)")
    # The cell is running once its own output arrives (busy comes first).
    kernel.iopub_until(msg_id, kernel.is_status("busy"), timeout=30)
    outputs: list[dict] = []
    kernel.iopub_until(
        msg_id,
        lambda m: m["msg_type"] == "stream" and "sleeping" in m["content"]["text"],
        timeout=30,
        collect=outputs,
    )
    kernel.km.interrupt_kernel()
    result = kernel.collect(msg_id, timeout=20)
    assert result.status == "error", result
    assert result.error is not None and result.error["ename"] == "KeyboardInterrupt"
    after = kernel.execute("'still alive'")
    assert after.data == "'still alive'"


def test_restart_empties_namespace(new_kernel) -> None:
    with new_kernel() as k:
        assert k.execute("x = 42").status == "ok"
        assert k.eval("x") == "42"
        k.restart()
        result = k.execute("x")
        assert result.status == "error"
        assert result.error is not None and result.error["ename"] == "NameError"
        assert k.execute("1+1").data == "2"


def test_a_shutdown_request_ends_the_kernel_cleanly(jupyter_sandbox, tmp_path: Path) -> None:
    """A frontend's shutdown: the kernel runs greed's do_shutdown, answers, and exits
    by itself with status 0, logging no error. (The other tests' kernels are killed
    once they have answered the request: see KernelHarness.shutdown.)"""
    log = tmp_path / "kernel.log"
    with open(log, "wb") as output:
        k = KernelHarness(output=output)
        process = k.km.provisioner.process
        assert k.execute("import greed_kernel; x = list(range(1000))").status == "ok"
        # jupyter_client kills a kernel that has not exited 5 s after the request; on 2
        # loaded cores (CI's xdist workers, each with kernels) the exit once took
        # longer: what is tested is that it exits by itself, not how fast
        k.km.shutdown_wait_time = 120.0
        k.shutdown(graceful=True)
    assert process.returncode == 0  # not killed after jupyter_client's wait
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and "failed" not in text, text[-3000:]


def test_under_coverage_the_kernels_exit_by_themselves(
    jupyter_sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While coverage.py measures the processes the tests start (``make coverage``
    sets COVERAGE_PROCESS_CONFIG), a kernel is not killed after its shutdown reply:
    it exits by itself, which is when it writes its data. (Set here only after the
    kernel started, which then measures nothing.)"""
    k = KernelHarness()
    process = k.km.provisioner.process
    assert k.execute("x = 1").status == "ok"
    monkeypatch.setenv("COVERAGE_PROCESS_CONFIG", "{}")
    k.shutdown()
    assert process.returncode == 0  # killed: -9


def test_fresh_kernel_does_not_import_torch(new_kernel) -> None:
    with new_kernel() as k:
        assert k.eval("'torch' in __import__('sys').modules") == "False"
        assert k.eval("'greed_kernel.kernel' in __import__('sys').modules") == "True"
        assert k.eval("type(get_ipython().kernel).__name__") == "'GreedKernel'"


def test_import_greed_kernel_does_not_import_torch() -> None:
    code = (
        "import sys, greed_kernel, greed_kernel.kernelspec\n"
        "assert 'torch' not in sys.modules\n"
        "assert 'ipykernel' not in sys.modules, 'import greed_kernel imported ipykernel'\n"
        "greed_kernel.GreedKernel\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_command_line_trait(new_kernel) -> None:
    with new_kernel("--GreedKernel.cleanup_interval=7", "--InteractiveShell.cache_size=0") as k:
        assert k.eval("get_ipython().kernel.cleanup_interval") == "7"
        assert k.eval("get_ipython().cache_size") == "0"
        assert k.execute("2 * 21").data == "42"
        assert k.eval("len(get_ipython().user_ns['Out'])") == "0"


def test_config_files(new_kernel, tmp_path: Path) -> None:
    """c.GreedKernel.x works in ipython_kernel_config.py; greed_kernel_config.py wins."""
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_kernel_config.py").write_text(
        "c.GreedKernel.cleanup_interval = 13\nc.GreedKernel.optimize_interval = 3\n"
    )
    (profile / "greed_kernel_config.py").write_text("c.GreedKernel.optimize_interval = 9\n")
    with new_kernel(f"--ipython-dir={tmp_path / 'ipython'}") as k:
        assert k.eval("get_ipython().kernel.cleanup_interval") == "13"
        assert k.eval("get_ipython().kernel.optimize_interval") == "9"


def test_invalid_trait_value_stops_the_kernel(jupyter_sandbox, tmp_path: Path) -> None:
    """A value the trait rejects is a fatal config error: the kernel exits with
    status 1 after logging the TraitError, so a front end reports a dead kernel
    instead of running with a silently ignored setting."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "greed_kernel",
            "-f",
            str(tmp_path / "kernel.json"),
            "--GreedKernel.memory_threshold=2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "Bad config" in proc.stderr
    assert "memory_threshold must be between 0 and 1, got 2.0" in proc.stderr
    with pytest.raises(RuntimeError, match="died"):
        KernelHarness("--GreedKernel.memory_threshold=2", startup_timeout=30)


def test_debugger_initialize(kernel: KernelHarness) -> None:
    reply = kernel.request(
        "debug_request",
        {
            "type": "request",
            "seq": 1,
            "command": "initialize",
            "arguments": {
                "clientID": "test",
                "adapterID": "python",
                "pathFormat": "path",
                "linesStartAt1": True,
                "columnsStartAt1": True,
                "supportsVariableType": True,
                "supportsVariablePaging": True,
                "supportsRunInTerminalRequest": True,
                "locale": "en",
            },
        },
        channel="control",
    )
    content = reply["content"]
    assert content["type"] == "response"
    assert content["command"] == "initialize"
    assert content["success"] is True, content
    assert content["body"]["supportsConfigurationDoneRequest"] is True


@pytest.mark.skipif(not zmq.has("curve"), reason="this libzmq was built without CurveZMQ")
def test_curve_encryption(new_kernel) -> None:
    """jupyter_client 8.10's KernelManager.transport_encryption provisions CurveZMQ keys
    when the spec declares metadata.supported_encryption = ['curve']; ipykernel 7.4
    reads them from the connection file and encrypts every socket."""
    with new_kernel(transport_encryption="required") as k:
        info = json.loads(Path(k.km.connection_file).read_text())
        assert info.get("curve_publickey") and info.get("curve_secretkey")
        result = k.execute("6 * 7")
        assert result.data == "42", result
        assert (
            k.eval(
                "__import__('ipykernel.kernelapp').kernelapp.IPKernelApp.instance()"
                ".curve_secretkey is not None"
            )
            == "True"
        )
        # A client without the server's public key gets nothing back.
        plain = BlockingKernelClient()
        plain.load_connection_info(
            {key: value for key, value in info.items() if not key.startswith("curve_")}
        )
        plain.start_channels(iopub=False, stdin=False, hb=False, control=False)
        try:
            plain.kernel_info()
            with pytest.raises(queue.Empty):
                plain.get_shell_msg(timeout=2)
        finally:
            plain.stop_channels()


def test_the_engine_shuts_down_on_the_main_thread(jupyter_sandbox, tmp_path: Path) -> None:
    """ipykernel answers a shutdown request on the control channel on its control
    thread; the engine's work in slices runs on the main thread, and its shutdown must
    not run beside it (a generator closed while it runs: "generator already
    executing"). The engine's shutdown is handed to the main thread."""
    seen = tmp_path / "thread"
    k = KernelHarness()
    code = (
        "import threading\n"
        "_engine = type(get_ipython().kernel.greed)\n"  # slotted: its class is patched
        "_shutdown = _engine.shutdown\n"
        "def _where(self):\n"
        f"    open({str(seen)!r}, 'w').write(threading.current_thread().name)\n"
        "    _shutdown(self)\n"
        "_engine.shutdown = _where"
    )
    result = k.execute(code)
    assert result.status == "ok", result.error
    k.shutdown()  # the request on the control channel, then (after its reply) a kill
    assert seen.read_text() == "MainThread"
