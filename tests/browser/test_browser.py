"""JupyterLab in a real (headless Chromium) browser runs cells on Greed (PyTorch).

The test starts `jupyter lab` in the sandbox that conftest sets up (where the
`greed` spec is), opens it with Playwright, clicks the "Greed (PyTorch)" card of
the launcher and types cells into the notebook as a user would: a tensor, a
model, a training loop, `%greed stats` and `%greed vars`. It checks what the
page renders, the kernel logo, the browser console, and the saved notebook, and
takes a screenshot: docs/jupyterlab-greed.png with GREED_SCREENSHOTS=1 set (to refresh
the README's picture), else in a temporary directory.

Needs Chromium (`make browser-deps`) and Playwright for Python (the `test`
extra). Without them the test fails and says what to install: it never skips.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from greed_kernel.kernelspec import DISPLAY_NAME, KERNEL_NAME

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = "jupyterlab-greed.png"
VIEWPORT = {"width": 1280, "height": 1100}  # the five cells and their outputs fit
INSTALL_HINT = (
    "run `make browser-deps` (Chromium from apt via scripts/install_browser_deps.sh) and "
    "install the test extra (`pip install -e '.[test]'`, which brings Playwright for Python). "
    "Never `playwright install`: the test drives the system Chromium."
)
SERVER_START_S = 60  # the server answering /api/status
KERNEL_START_S = 90  # the kernel idle after clicking the card
CELL_S = 90  # one cell (the first imports torch)

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

# The cells, typed as a user would. The model is defined in one cell and trained in another.
CELLS = [
    "import torch; t = torch.arange(6).reshape(2, 3); t",
    "model = torch.nn.Linear(3, 1); optimizer = torch.optim.SGD(model.parameters(), lr=0.1)",
    "x = torch.tensor([[0.0, 0.5, 1.0], [1.0, 0.0, 0.5], [0.5, 1.0, 0.0], [1.0, 1.0, 1.0]])\n"
    "y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.25\n"
    "for step in range(20):\n"
    "    optimizer.zero_grad(); loss = torch.nn.functional.mse_loss(model(x), y)\n"
    "    loss.backward(); optimizer.step()\n"
    '    if step == 0: print(f"first loss: {loss.item():.4f}")\n'
    'print(f"final loss: {loss.item():.4f}")',
    "%greed stats",
    "%greed vars",
]


def screenshot_path(name: str) -> Path:
    """Where a screenshot goes: docs/NAME when GREED_SCREENSHOTS=1 (the README's
    pictures), else a temporary directory, so that a test run leaves the tree as it was."""
    if os.environ.get("GREED_SCREENSHOTS") == "1":
        return REPO / "docs" / name
    folder = Path(tempfile.gettempdir()) / "greed-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def _chromium() -> str:
    for candidate in (
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        f"Chromium is not installed (looked for /usr/bin/chromium and PATH): {INSTALL_HINT}"
    )


def _playwright() -> Any:
    try:
        from playwright import sync_api
    except ImportError as err:
        pytest.fail(f"Playwright for Python is not installed ({err}): {INSTALL_HINT}")
    return sync_api


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabServer:
    process: subprocess.Popen[bytes]
    url: str  # http://127.0.0.1:PORT
    token: str
    root: Path  # the server's root_dir: where the notebook lands
    log: Path
    kernel_pids: set[int] = field(default_factory=set)

    def request(
        self, path: str, method: str = "GET", timeout: float = 10
    ) -> tuple[int, str, bytes]:
        """Status, content type and body of ``path`` on the server, with the token."""
        req = urllib.request.Request(
            self.url + path, method=method, headers={"Authorization": f"token {self.token}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.headers.get("Content-Type", ""), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers.get("Content-Type", ""), err.read()

    def api(self, path: str) -> Any:
        status, _, body = self.request(path)
        assert status == 200, f"GET {path}: HTTP {status} {body[:300]!r}"
        return json.loads(body)

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def remember_kernels(self) -> None:
        """Note the server's child processes (the kernels) to end any still alive later."""
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                self.kernel_pids.add(child.pid)


LAB_SETTINGS = {
    # Neither ask about nor fetch news and updates: the page makes no outside request.
    "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    # Ctrl+S saves the Untitled notebook at once, without the "Rename file" dialog.
    "docmanager-extension/plugin": {"renameUntitledFileOnSave": False},
}


def _write_lab_settings(settings_dir: Path) -> None:
    """JupyterLab user settings for a quiet, predictable page."""
    for plugin, values in LAB_SETTINGS.items():
        path = settings_dir / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")


@contextlib.contextmanager
def lab_server(jupyter_sandbox, tmp_path: Path) -> Iterator[LabServer]:
    """`jupyter lab` on a free localhost port, with a token, in sandboxed directories."""
    root = tmp_path / "notebooks"
    dirs = {
        name: tmp_path / sub
        for name, sub in [
            ("HOME", "home"),
            ("JUPYTER_CONFIG_DIR", "config"),
            ("JUPYTER_DATA_DIR", "data"),
            ("JUPYTER_RUNTIME_DIR", "runtime"),
        ]
    }
    settings_dir = tmp_path / "lab" / "user-settings"
    workspaces_dir = tmp_path / "lab" / "workspaces"
    for path in [root, settings_dir, workspaces_dir, *dirs.values()]:
        path.mkdir(parents=True, exist_ok=True)
    _write_lab_settings(settings_dir)
    # JUPYTER_PATH (where conftest wrote the `greed` spec) and IPYTHONDIR come from the
    # session sandbox; the server gets its own home, config, data and runtime dirs.
    env = jupyter_sandbox.environ(**{k: str(v) for k, v in dirs.items()})
    port, token = _free_port(), secrets.token_hex(16)
    argv = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",  # a taken port fails loudly, not on another port
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings_dir}",
        f"--LabApp.workspaces_dir={workspaces_dir}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")
    log = tmp_path / "jupyterlab.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            argv,
            env=env,
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LabServer(process, f"http://127.0.0.1:{port}", token, root, log)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited ({process.returncode}):\n{server.log_tail()}")
            with contextlib.suppress(OSError):
                if server.request("/api/status", timeout=2)[0] == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"jupyter lab not answering after {SERVER_START_S} s:\n{server.log_tail()}"
                )
            time.sleep(0.25)
        yield server
    finally:
        _stop_server(server)


def _stop_server(server: LabServer) -> None:
    """Shut down through the API (it ends the kernels), then end whatever is left by PID."""
    server.remember_kernels()
    if server.process.poll() is None:
        with contextlib.suppress(OSError):
            server.request("/api/shutdown", method="POST", timeout=10)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=10)
    leftovers = []
    for pid in server.kernel_pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            leftovers.append(psutil.Process(pid))
    for proc in leftovers:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(leftovers, timeout=5)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


@dataclass
class Console:
    """What the page logged as an error: console.error messages and uncaught exceptions."""

    errors: list[str] = field(default_factory=list)

    def on_console(self, message: Any) -> None:
        if message.type == "error":
            location = message.location or {}
            self.errors.append(f"console.error: {message.text} ({location.get('url', '')})")

    def on_pageerror(self, error: Any) -> None:
        self.errors.append(f"pageerror: {error}")


# Lines the server logs when the kernel process died: the test never restarts it on purpose.
KERNEL_DIED = re.compile(r"KernelRestarter: restart(ing kernel| failed)|Kernel \S+ died")


@contextlib.contextmanager
def evidence_on_failure(
    page: Any, server: LabServer, console: Console, tmp_path: Path
) -> Iterator[None]:
    """On failure, keep a screenshot and the page's HTML, and print the server log."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(tmp_path / "failure.png"))
            (tmp_path / "failure.html").write_text(page.content(), encoding="utf-8")
        print(f"page left in {tmp_path}; server log:\n{server.log_tail()}")
        print("browser errors:", *console.errors, sep="\n  ")
        raise


def _check_alive(server: LabServer) -> None:
    """Fail at once, with the server's log, when the server or the kernel died."""
    if server.process.poll() is not None:
        pytest.fail(f"jupyter lab exited ({server.process.returncode}):\n{server.log_tail()}")
    log = server.log_tail(200_000)
    if KERNEL_DIED.search(log):
        pytest.fail(f"the kernel died (see the server log):\n{log[-6000:]}")


def _wait_until(server: LabServer, what: str, timeout: float, ready: Any) -> Any:
    """Poll ``ready()`` until it returns something true; fail fast if the kernel died."""
    deadline = time.monotonic() + timeout
    while True:
        _check_alive(server)
        value = ready()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout:.0f} s\n{server.log_tail()}")
        time.sleep(0.2)


def _wait_kernel_idle(page: Any, server: LabServer, timeout: float) -> None:
    """The toolbar names our kernel, its indicator is idle, and the server agrees."""
    name = page.locator(".jp-NotebookPanel-toolbar .jp-KernelName")
    indicator = page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator")

    def idle() -> bool:
        if name.count() != 1 or name.inner_text().strip() != DISPLAY_NAME:
            return False
        if indicator.count() != 1 or indicator.get_attribute("data-status") != "idle":
            return False
        sessions = server.api("/api/sessions")
        return bool(sessions) and all(s["kernel"]["execution_state"] == "idle" for s in sessions)

    _wait_until(server, f"the {DISPLAY_NAME} kernel idle", timeout, idle)


def _run_cell(page: Any, server: LabServer, expect: Any, index: int, source: str) -> Any:
    """Type ``source`` into cell ``index`` (the last, empty one), run it, wait for the result."""
    cell = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(index)
    editor = cell.locator(".cm-content")
    expect(editor).to_be_visible(timeout=10_000)
    editor.click()
    expect(editor).to_be_focused(timeout=5_000)
    # insert_text types no keys one by one: no auto-closed brackets, no added indentation.
    page.keyboard.insert_text(source)
    lines = editor.locator(".cm-line")
    expect(lines).to_have_count(source.count("\n") + 1, timeout=5_000)
    typed = "\n".join(lines.all_inner_texts())
    assert typed == source, f"the editor holds {typed!r}, not {source!r}"
    page.keyboard.press("Shift+Enter")
    prompt = cell.locator(".jp-InputArea-prompt")
    _wait_until(
        server,
        f"cell {index + 1} executed",
        CELL_S,
        lambda: re.fullmatch(r"\[\d+\]:", prompt.inner_text().strip()),
    )
    _wait_kernel_idle(page, server, CELL_S)
    return cell


def _saved_notebook(page: Any, server: LabServer, path: str, n_cells: int) -> dict[str, Any]:
    """Save (Ctrl+S) and read the notebook file until it holds the executed cells."""
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(OSError, ValueError):
            nb = json.loads((server.root / path).read_text(encoding="utf-8"))
            ran = [c for c in nb["cells"] if c["cell_type"] == "code" and c["execution_count"]]
            if len(ran) >= n_cells:
                return nb
        assert time.monotonic() < deadline, f"{path} not saved with {n_cells} executed cells"
        time.sleep(0.25)


def _table(cell: Any) -> dict[str, Any]:
    """The first rendered greed table in ``cell``'s output: caption, headers, rows."""
    return cell.locator(".jp-OutputArea-output table.greed-table").first.evaluate(
        """t => ({
            caption: t.caption ? t.caption.innerText.trim() : "",
            headers: [...t.querySelectorAll("thead th")].map(th => th.innerText.trim()),
            rows: [...t.querySelectorAll("tbody tr")].map(
                tr => [...tr.querySelectorAll("td")].map(td => td.innerText.trim())),
        })"""
    )


def test_jupyterlab_runs_cells_on_greed(jupyter_sandbox, tmp_path: Path) -> None:
    # Checked first, in the test itself: a missing browser fails the test (never skips it).
    chromium, sync_api = _chromium(), _playwright()
    with lab_server(jupyter_sandbox, tmp_path) as server:
        _check_lab(server, chromium, sync_api, tmp_path)


def _check_lab(server: LabServer, chromium: str, sync_api: Any, tmp_path: Path) -> None:
    expect = sync_api.expect
    # The logo is served by the server, as the launcher asks for it.
    status, content_type, body = server.request(f"/kernelspecs/{KERNEL_NAME}/logo-64x64.png")
    assert status == 200, f"logo: HTTP {status}"
    assert content_type.startswith("image/png"), content_type
    assert body.startswith(b"\x89PNG\r\n\x1a\n"), body[:16]
    status, content_type, body = server.request(f"/kernelspecs/{KERNEL_NAME}/logo-svg.svg")
    assert status == 200 and content_type.startswith("image/svg+xml"), (status, content_type)
    assert b"<svg" in body, body[:200]
    specs = server.api("/api/kernelspecs")["kernelspecs"]
    assert KERNEL_NAME in specs, f"the server does not see the greed spec: {sorted(specs)}"
    assert specs[KERNEL_NAME]["spec"]["display_name"] == DISPLAY_NAME, specs[KERNEL_NAME]
    assert {"logo-64x64", "logo-svg"} <= set(specs[KERNEL_NAME]["resources"]), specs[KERNEL_NAME]

    console = Console()
    with sync_api.sync_playwright() as pw:
        try:
            context = pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),
                executable_path=chromium,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport=VIEWPORT,
            )
        except sync_api.Error as err:
            pytest.fail(
                f"Chromium at {chromium} did not start under Playwright: {err}\n{INSTALL_HINT}"
            )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.on("console", console.on_console)
            page.on("pageerror", console.on_pageerror)
            with evidence_on_failure(page, server, console, tmp_path):
                _drive(page, server, expect)
        finally:
            context.close()

    # A frontend that opens no `greed` comm must see no error about it; nor any other.
    ours = [e for e in console.errors if re.search(r"greed|comm", e, re.IGNORECASE)]
    assert not ours, "browser console errors from the greed comm:\n" + "\n".join(ours)
    assert not console.errors, "browser console errors:\n" + "\n".join(console.errors)
    # Nor did the server or the kernel (whose stderr is in the server's log) hit an exception.
    log = server.log_tail(1_000_000)
    assert "Traceback" not in log, log[-6000:]


def _drive(page: Any, server: LabServer, expect: Any) -> None:
    page.goto(f"{server.url}/lab?token={server.token}", wait_until="domcontentloaded")

    # The launcher's Notebook section has a card for our kernel, with its logo.
    card = page.locator(f'.jp-LauncherCard[data-category="Notebook"][title="{DISPLAY_NAME}"]')
    expect(card).to_be_visible(timeout=60_000)
    # JupyterLab 4.6 shows the spec's SVG logo where there is one, else logo-64x64.png.
    logo = card.locator("img.jp-Launcher-kernelIcon")
    expect(logo).to_have_attribute(
        "src",
        re.compile(rf"/kernelspecs/{KERNEL_NAME}/logo-(svg\.svg|64x64\.png)$"),
        timeout=10_000,
    )
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=logo.element_handle())
    card.click()

    _wait_kernel_idle(page, server, KERNEL_START_S)
    # Close the file browser (clicking its open tab): the notebook gets the whole width.
    page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()
    expect(page.locator("#jp-left-stack")).to_be_hidden(timeout=10_000)
    cells = [_run_cell(page, server, expect, i, source) for i, source in enumerate(CELLS)]

    # (a) the tensor's repr
    out = cells[0].locator(".jp-OutputArea-output")
    expect(out).to_contain_text("tensor([[0, 1, 2],")
    expect(out).to_contain_text("[3, 4, 5]])")
    # (c) the training printed its losses, and it learnt
    text = cells[2].locator(".jp-OutputArea-output").inner_text()
    first = re.search(r"first loss: (\d+\.\d+)", text)
    final = re.search(r"final loss: (\d+\.\d+)", text)
    assert first and final, f"training output: {text!r}"
    assert float(final.group(1)) < float(first.group(1)), text
    # (d) %greed stats, rendered as an HTML table
    stats = _table(cells[3])
    assert stats["caption"] == "Greed stats", stats
    assert "executionCount" in [row[0] for row in stats["rows"] if row], stats
    # (e) %greed vars lists what the cells made
    variables = _table(cells[4])
    assert re.fullmatch(r"Greed: \d+ variables", variables["caption"]), variables
    assert variables["headers"] == [
        "name",
        "type",
        "size",
        "device",
        "last touched",
        "decision",
    ], variables
    names = {row[0] for row in variables["rows"] if row}
    assert {"model", "t"} <= names, variables

    # The server ran these cells on a `greed` kernel, and the saved notebook has no error.
    sessions = server.api("/api/sessions")
    assert len(sessions) == 1 and sessions[0]["kernel"]["name"] == KERNEL_NAME, sessions
    server.remember_kernels()
    nb = _saved_notebook(page, server, sessions[0]["path"], len(CELLS))
    assert nb["metadata"]["kernelspec"]["name"] == KERNEL_NAME, nb["metadata"]
    errors = [
        (c["source"], o)
        for c in nb["cells"]
        for o in c.get("outputs", [])
        if o["output_type"] == "error"
    ]
    assert not errors, errors

    # The notebook with its outputs, for the docs: the long stats table scrolls in its own
    # box (as the cell menu's "Enable Scrolling for Outputs" does), so that all five cells fit.
    cells[3].locator(".jp-OutputArea-output").first.click(button="right")
    page.get_by_role("menuitem", name="Enable Scrolling for Outputs").click()
    expect(cells[3]).to_have_class(re.compile(r"\bjp-mod-outputsScrolled\b"), timeout=5_000)
    page.keyboard.press("Escape")
    cells[0].scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_path(SCREENSHOT)))
