"""The JupyterLab extension (labextension/, prebuilt in greed_kernel/labextension) in a
real (headless Chromium) browser.

The server is the one tests/browser/test_browser.py starts, with the prebuilt extension linked
into its data directory (an editable install does not put it in sys.prefix), and
`jupyter labextension list` with the same directories shows it enabled and OK. On a
`greed` notebook the status bar shows the memory counted against the budget over its
limit and the last cleanup; clicking it opens the panel, whose "Clean up now" runs a
cleanup, whose table lists the variables with their sizes and sorts by header, and
whose rows preserve a variable. A memory limit set just under what the kernel holds
makes it page out a value: the item says how much is paged, the panel's budget line
says the budget is held, the value's row shows its paged bytes, and "Read back all"
reads it back. The comm survives an
interrupt ("Optimise now" still answers) and uses no kernel subshell. On a `python3`
notebook the item is hidden and no `greed` comm is opened; back on the Greed notebook it
shows again. When the kernel closes the comm the item says so; after a restart a new comm
is opened. No browser console errors, no traceback in the server log. The notebook with
the panel is saved as docs/jupyterlab-greed-panel.png with GREED_SCREENSHOTS=1 set, else
in a temporary directory. The refresh-rate and
show-status-item settings, changed in the Settings editor, take effect at once.

Needs what tests/browser/test_browser.py needs (Chromium, Playwright for Python); never skips.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import test_browser as tb

from greed_kernel.kernelspec import DISPLAY_NAME, KERNEL_NAME

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
PREBUILT = REPO / "greed_kernel" / "labextension"
EXTENSION = "greed-kernel-lab"
CONNECTIONS_PLUGIN = f"{EXTENSION}:connections"
SCREENSHOT = "jupyterlab-greed-panel.png"
PYTHON3_NAME = "Python 3 (ipykernel)"
BUILD_HINT = (
    "the prebuilt extension is missing: build it with `make labext` "
    "(Node.js and the `lab` extra; see labextension/README.md) and commit greed_kernel/labextension"
)
UI_S = 30  # something the extension shows after the kernel answered

CELLS = [
    "import torch; x = torch.zeros(1024, 256)",
    "model = torch.nn.Sequential(torch.nn.Linear(256, 64), torch.nn.ReLU(), "
    "torch.nn.Linear(64, 10))",
    "y = model(x); y.shape",
]

STATUS = ".jp-greed-status"
PANEL = "#greed-kernel-lab-panel"
_SIZE = r"\d+(\.\d)? (B|KiB|MiB|GiB|TiB)"
# the memory counted against the budget over its limit: "Mem 1.1 / 1.5 GiB (73%)",
# "Mem 812 MiB / 1.5 GiB (53%)"
BUDGET_TEXT = re.compile(r"Mem \d+(\.\d)?( (B|KiB|MiB|GiB|TiB))? / " + _SIZE + r" \(\d+%\)")
PAGED_TEXT = re.compile(_SIZE + " paged")
# A 512 MiB value, then a memory limit that puts the kernel at 85 % of it: above the
# 0.8 threshold, so the kernel pages out least recently used values (the new one last)
# until it is under the 0.7 low watermark, which paging part of `big` reaches wherever
# the kernel held less than about 2 GiB before it.
PAGING_CELL = (
    "big = torch.ones(128, 1024, 1024)\n"
    "get_ipython().kernel.memory_limit = int(get_ipython().kernel.greed.probe.unreclaimable()"
    " / 0.85)"
)
UNLIMIT_CELL = "get_ipython().kernel.memory_limit = 0"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# JupyterLab's own debugger logs this when any kernel restarts (its debug_request is
# cancelled); it is no error of this extension, which logs none.
KNOWN_ERRORS = re.compile(
    r"^console\.error: Could not restore the debugger state: Canceled future for "
    r"debug_request message"
)


def _link_extension(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the prebuilt extension visible to the server: <data dir>/labextensions/NAME.

    In a virtual environment Jupyter looks in the environment's share/jupyter before
    the user's data dir, where an install may have left a copy of an older build: the
    server is told to prefer the data dir, so it serves this checkout's build.
    """
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "0")
    built = list(PREBUILT.glob("static/remoteEntry.*.js"))
    if not (PREBUILT / "package.json").is_file() or not built:
        pytest.fail(BUILD_HINT)
    target = data_dir / "labextensions" / EXTENSION
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(PREBUILT, target_is_directory=True)
    return target


def _check_served(server: tb.LabServer) -> None:
    """The page loads the committed build (its remoteEntry), not another copy."""
    status, _, body = server.request("/lab")
    assert status == 200, body[:2000]
    match = re.search(
        rb'<script id="jupyter-config-data" type="application/json">(.*?)</script>', body, re.S
    )
    assert match, body[:2000]
    config = json.loads(match.group(1))
    served = [e for e in config.get("federated_extensions", []) if e["name"] == EXTENSION]
    built = json.loads((PREBUILT / "package.json").read_text(encoding="utf-8"))
    load = built["jupyterlab"]["_build"]["load"]
    assert [e["load"] for e in served] == [load], (
        f"the server loads {served}, not this checkout's build ({load}): another copy of "
        f"{EXTENSION} shadows it"
    )


def _server_env(jupyter_sandbox: Any, tmp_path: Path) -> dict[str, str]:
    """The environment lab_server gives the server (same data and config dirs)."""
    return jupyter_sandbox.environ(
        HOME=str(tmp_path / "home"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
    )


def _check_listed(env: dict[str, str]) -> None:
    """`jupyter labextension list` sees the extension, enabled and OK."""
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = ANSI.sub("", proc.stdout + proc.stderr)
    assert proc.returncode == 0, out
    lines = [line for line in out.splitlines() if EXTENSION in line]
    assert lines, f"{EXTENSION} not listed:\n{out}"
    assert any(re.search(r"\benabled\b.*\bOK\b", line) for line in lines), out


class Frames:
    """The kernel websocket messages the page sends: which kernels got a greed comm_open."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def on_websocket(self, ws: Any) -> None:
        url = ws.url

        def sent(payload: str | bytes) -> None:
            data = payload.encode() if isinstance(payload, str) else payload
            self.sent.append((url, data))

        ws.on("framesent", sent)

    def comm_opens(self, kernel_id: str) -> int:
        """comm_open messages with target greed sent to that kernel."""
        return sum(
            1
            for url, data in self.sent
            if f"/api/kernels/{kernel_id}/" in url
            and b'"msg_type":"comm_open"' in data
            and b'"target_name":"greed"' in data
        )

    def subshell_requests(self, kernel_id: str) -> int:
        """create_subshell_request messages sent to that kernel (the greed comm asks none)."""
        return sum(
            1
            for url, data in self.sent
            if f"/api/kernels/{kernel_id}/" in url
            and b'"msg_type":"create_subshell_request"' in data
        )

    def to_kernel(self, kernel_id: str) -> int:
        return sum(1 for url, _ in self.sent if f"/api/kernels/{kernel_id}/" in url)

    def stats_requests(self, kernel_id: str) -> int:
        """The extension's {"method": "stats"} JSON-RPC requests to that kernel."""
        return sum(
            1
            for url, data in self.sent
            if f"/api/kernels/{kernel_id}/" in url
            and b'"msg_type":"comm_msg"' in data
            and b'"method":"stats"' in data
        )


def test_extension_status_bar_and_panel(
    jupyter_sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chromium, sync_api = tb._chromium(), tb._playwright()
    _link_extension(tmp_path / "data", monkeypatch)
    _check_listed(_server_env(jupyter_sandbox, tmp_path))
    with tb.lab_server(jupyter_sandbox, tmp_path) as server:
        _check_served(server)
        # The server lists it among the federated extensions the page loads.
        status, _, body = server.request("/lab/api/extensions")
        if status == 200:
            assert EXTENSION.encode() in body, body[:2000]
        console, frames = tb.Console(), Frames()
        with sync_api.sync_playwright() as pw:
            try:
                context = pw.chromium.launch_persistent_context(
                    str(tmp_path / "chromium-profile"),
                    executable_path=chromium,
                    args=tb.CHROMIUM_ARGS,
                    headless=True,
                    viewport=tb.VIEWPORT,
                )
            except sync_api.Error as err:
                pytest.fail(f"Chromium at {chromium} did not start under Playwright: {err}")
            try:
                page = context.pages[0] if context.pages else context.new_page()
                page.on("console", console.on_console)
                page.on("pageerror", console.on_pageerror)
                page.on("websocket", frames.on_websocket)
                with tb.evidence_on_failure(page, server, console, tmp_path):
                    _drive(page, server, sync_api.expect, frames)
            finally:
                context.close()
        errors = [e for e in console.errors if not KNOWN_ERRORS.search(e)]
        assert not errors, "browser console errors:\n" + "\n".join(errors)
        log = server.log_tail(1_000_000)
        assert "Traceback" not in log, log[-6000:]


def _session(server: tb.LabServer, kernel_name: str) -> dict[str, Any]:
    sessions = [s for s in server.api("/api/sessions") if s["kernel"]["name"] == kernel_name]
    assert len(sessions) == 1, sessions
    return sessions[0]


def _vars_table(page: Any) -> dict[str, dict[str, str]]:
    """The panel's variables table: name -> {column header: cell text}."""
    return page.locator(f"{PANEL} table.jp-greed-vars").evaluate(
        """t => {
            const heads = [...t.querySelectorAll("thead th")].map(th => th.innerText.trim());
            const rows = {};
            for (const tr of t.querySelectorAll("tbody tr")) {
                const cells = [...tr.querySelectorAll("td")].map(td => td.innerText.trim());
                const row = {};
                heads.forEach((h, i) => { if (h) row[h.replace(/[▲▼]/g, "").trim()] = cells[i]; });
                const buttons = [...tr.querySelectorAll("button")];
                row.actions = buttons.map(b => b.innerText.trim()).join(",");
                rows[tr.dataset.name] = row;
            }
            return rows;
        }"""
    )


def _row_names(page: Any) -> list[str]:
    return page.locator(f"{PANEL} table.jp-greed-vars tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.name)"
    )


def _drive(page: Any, server: tb.LabServer, expect: Any, frames: Frames) -> None:
    page.goto(f"{server.url}/lab?token={server.token}", wait_until="domcontentloaded")
    card = page.locator(f'.jp-LauncherCard[data-category="Notebook"][title="{DISPLAY_NAME}"]')
    expect(card).to_be_visible(timeout=60_000)
    card.click()
    tb._wait_kernel_idle(page, server, tb.KERNEL_START_S)
    page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()
    expect(page.locator("#jp-left-stack")).to_be_hidden(timeout=10_000)
    greed_kernel = _session(server, KERNEL_NAME)["kernel"]["id"]

    # The item shows once the comm said hello: the memory counted against the budget
    # over its limit, and its share.
    item = page.locator(STATUS)
    expect(item).to_be_visible(timeout=UI_S * 1000)
    expect(item).to_contain_text(BUDGET_TEXT, timeout=UI_S * 1000)
    assert frames.comm_opens(greed_kernel) == 1, "one greed comm_open on the greed kernel"
    assert item.get_attribute("data-level") in ("normal", "warning", "danger")
    assert item.get_attribute("data-held") == "true"
    title = item.get_attribute("title") or ""
    assert "not reclaimable (RssAnon+RssShmem) of the" in title, title
    assert "paged out to disk: nothing" in title, title

    for i, source in enumerate(CELLS):
        tb._run_cell(page, server, expect, i, source)
    expect(item).to_contain_text(BUDGET_TEXT)

    # Clicking it opens the panel, which lists the variables with their sizes.
    item.click()
    panel = page.locator(PANEL)
    expect(panel).to_be_visible(timeout=10_000)
    expect(panel.locator("tr[data-name='x']")).to_be_visible(timeout=UI_S * 1000)
    expect(panel.locator("tr[data-name='y']")).to_be_visible(timeout=UI_S * 1000)
    rows = _vars_table(page)
    assert {"x", "y", "model"} <= set(rows), rows
    assert rows["x"]["Size"] == "1.0 MiB", rows["x"]  # 1024 x 256 float32
    assert rows["x"]["Type"].endswith("Tensor") and rows["x"]["Device"] == "cpu", rows["x"]
    assert rows["model"]["Type"].endswith("Sequential"), rows["model"]
    assert rows["x"]["actions"] == "Preserve", rows["x"]

    # "Clean up now": the status bar and the history show the new cleanup.
    panel.get_by_role("button", name="Clean up now").click()
    expect(item).to_contain_text(
        re.compile(r"cleanup \d+ s ago, freed \d+(\.\d)? (B|KiB|MiB|GiB)"),
        timeout=UI_S * 1000,
    )
    history = panel.locator("table.jp-greed-history tbody tr")
    expect(history.first).to_contain_text("manual", timeout=UI_S * 1000)
    expect(history.first).to_contain_text("cleanup")
    # x, model and y are recent: the cleanup kept them.
    expect(panel.locator("tr[data-name='x']")).to_be_visible()

    # Sorting by clicking headers: name ascending, then descending.
    panel.locator("table.jp-greed-vars th[data-key='name']").click()
    names = _row_names(page)
    assert names == sorted(names, key=str.lower), names
    panel.locator("table.jp-greed-vars th[data-key='name']").click()
    names = _row_names(page)
    assert names == sorted(names, key=str.lower, reverse=True), names
    panel.locator("table.jp-greed-vars th[data-key='size']").click()
    names = _row_names(page)
    assert names[0] == "x", names  # the largest first: 1 MiB

    # Preserve x from its row: the kernel marks it and the row says so.
    panel.locator("tr[data-name='x'] button[data-action='preserve']").click()
    expect(panel.locator("tr[data-name='x'] button[data-action='unpreserve']")).to_be_visible(
        timeout=UI_S * 1000
    )
    expect(panel.locator("tr[data-name='x']")).to_contain_text("marked")
    budget_line = panel.locator(".jp-greed-panel-budget")
    expect(budget_line).to_contain_text(re.compile(r"^Budget " + _SIZE + ": "))
    expect(panel.get_by_role("button", name="Read back all")).to_have_count(0)

    # A memory limit just under what the kernel holds: it pages out until under the
    # low watermark, and holds the budget. The item says how much is paged, the row of
    # the value paged shows its bytes and offers to read it back.
    tb._run_cell(page, server, expect, len(CELLS), PAGING_CELL)
    expect(item).to_contain_text(PAGED_TEXT, timeout=UI_S * 1000)
    expect(item).to_contain_text(BUDGET_TEXT)
    expect(budget_line).to_contain_text(re.compile(_SIZE + " paged out; held"), timeout=UI_S * 1000)
    big = panel.locator("tr[data-name='big']")
    expect(big.locator("td.jp-greed-paged-bytes")).to_have_text(
        re.compile(_SIZE), timeout=UI_S * 1000
    )
    expect(big.locator("button[data-action='restore']")).to_have_text("Read back")
    assert item.get_attribute("data-held") == "true"
    assert "paged out to disk: " in (item.get_attribute("title") or "")
    expect(history.first).to_contain_text("memory", timeout=UI_S * 1000)

    # The picture for the docs: the notebook, the status bar and the panel, widened by
    # dragging the sidebar's edge as a user would, so that every column shows.
    page.keyboard.press("Escape")
    _widen_right_sidebar(page, 780)
    expect(panel.locator("table.jp-greed-vars th[data-key='paged']")).to_be_in_viewport()
    page.screenshot(path=str(tb.screenshot_path(SCREENSHOT)))

    # No limit any more, then "Read back" on big's row and "Read back all": the panel
    # says what each read back. (Read back, the memory stays mapped from its file, as
    # file-backed pages the OS may drop again: the kernel still counts it as paged.)
    _run_narrow_cell(page, server, expect, len(CELLS) + 1, UNLIMIT_CELL)
    message = panel.locator(".jp-greed-panel-message")
    big.locator("button[data-action='restore']").click()
    expect(message).to_have_text(
        re.compile(r"^Read back " + _SIZE + " of big$"), timeout=UI_S * 1000
    )
    panel.get_by_role("button", name="Refresh").click()
    expect(message).to_have_count(0)  # the last answer goes with the next action
    panel.get_by_role("button", name="Read back all").click()
    expect(message).to_have_text(
        re.compile(r"^Read back " + _SIZE + " of .*big"), timeout=UI_S * 1000
    )
    expect(panel.get_by_role("button", name="Read back all")).to_be_enabled()

    # Interrupt a running cell: the comm stays open and answers ("Optimise now").
    sleeper = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(len(CELLS) + 2)
    sleeper.locator(".cm-content").click()
    page.keyboard.insert_text("import time; time.sleep(120)")
    page.keyboard.press("Shift+Enter")
    expect(sleeper.locator(".jp-InputArea-prompt")).to_have_text("[*]:", timeout=10_000)
    page.get_by_role("menuitem", name="Kernel", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Interrupt Kernel")).first.click()
    expect(sleeper.locator(".jp-OutputArea-output")).to_contain_text(
        "KeyboardInterrupt", timeout=UI_S * 1000
    )
    # (the narrowed notebook's toolbar folds the kernel's indicator away: ask the server)
    tb._wait_until(
        server,
        "the kernel idle after the interrupt",
        tb.CELL_S,
        lambda: _session(server, KERNEL_NAME)["kernel"]["execution_state"] == "idle",
    )
    panel.get_by_role("button", name="Optimise now").click()
    expect(history.first).to_contain_text("optimize", timeout=UI_S * 1000)
    expect(item).to_contain_text(BUDGET_TEXT)
    assert frames.comm_opens(greed_kernel) == 1, "the interrupt needed no new comm"
    assert frames.subshell_requests(greed_kernel) == 0, "the greed comm must use no subshell"

    # A python3 notebook: no item, no comm.
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-addButton").first.click()
    py_card = page.locator(f'.jp-LauncherCard[data-category="Notebook"][title="{PYTHON3_NAME}"]')
    expect(py_card).to_be_visible(timeout=30_000)
    py_card.click()
    # (the narrow notebook's toolbar folds the kernel name away: the status bar has it)
    expect(page.locator("#jp-main-statusbar")).to_contain_text(
        f"{PYTHON3_NAME} | Idle", timeout=tb.KERNEL_START_S * 1000
    )
    expect(item).to_be_hidden(timeout=10_000)
    expect(panel).to_contain_text("runs no Greed", timeout=10_000)
    python3_kernel = _session(server, "python3")["kernel"]["id"]
    time.sleep(6)  # past a poll: still nothing goes to the python3 kernel about greed
    assert frames.to_kernel(python3_kernel) > 0, "the page talked to the python3 kernel"
    assert frames.comm_opens(python3_kernel) == 0, "a greed comm was opened on python3"
    expect(item).to_be_hidden()

    # Back to the Greed notebook: the item is back, on the same comm.
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Untitled.ipynb").click()
    expect(item).to_be_visible(timeout=10_000)
    expect(item).to_contain_text(BUDGET_TEXT)
    expect(panel.locator("tr[data-name='x']")).to_be_visible(timeout=UI_S * 1000)
    assert frames.comm_opens(greed_kernel) == 1

    # The kernel closes the comm: the item says so, and nothing is sent on it any more.
    greed_tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Untitled.ipynb")
    greed_nb = page.locator(f"[id='{greed_tab.get_attribute('data-id')}']")
    closer = greed_nb.locator(".jp-Notebook .jp-Cell").last
    closer.locator(".cm-content").click()
    page.keyboard.insert_text(
        "for c in list(get_ipython().kernel.greed_channel.comms.values()): c.close()"
    )
    page.keyboard.press("Shift+Enter")
    expect(item).to_contain_text("Greed: disconnected", timeout=UI_S * 1000)
    expect(panel).to_contain_text("closed the greed comm")

    # Restart the Greed kernel: the item waits, then shows the new kernel's stats (no
    # cleanup yet) through a new comm, and the panel's table no longer has x.
    page.get_by_role("menuitem", name="Kernel", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Restart Kernel…")).first.click()
    page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
    expect(item).to_contain_text(BUDGET_TEXT, timeout=UI_S * 1000)
    expect(item).to_contain_text("no cleanup yet", timeout=UI_S * 1000)
    expect(panel.locator("tr[data-name='x']")).to_have_count(0, timeout=UI_S * 1000)


def _run_narrow_cell(page: Any, server: tb.LabServer, expect: Any, index: int, source: str) -> None:
    """Run a cell of the narrowed notebook, whose toolbar folds the kernel's indicator
    away: wait for its prompt's number, and for the server to say the kernel is idle."""
    cell = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(index)
    cell.locator(".cm-content").click()
    page.keyboard.insert_text(source)
    page.keyboard.press("Shift+Enter")
    expect(cell.locator(".jp-InputArea-prompt")).to_have_text(
        re.compile(r"^\[\d+\]:$"), timeout=tb.CELL_S * 1000
    )
    tb._wait_until(
        server,
        f"the kernel idle after cell {index + 1}",
        tb.CELL_S,
        lambda: _session(server, KERNEL_NAME)["kernel"]["execution_state"] == "idle",
    )


def _widen_right_sidebar(page: Any, width: int) -> None:
    """Drag the handle left of the right sidebar until the sidebar is ``width`` px wide."""
    stack = page.locator("#jp-right-stack").bounding_box()
    assert stack, "the right sidebar is not shown"
    x, y = stack["x"] - 2, stack["y"] + stack["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - (width - stack["width"]), y, steps=8)
    page.mouse.up()


def _wait(server: tb.LabServer, what: str, ready: Any, timeout: float = UI_S) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if server.process.poll() is not None:
            pytest.fail(f"jupyter lab exited:\n{server.log_tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout:.0f} s\n{server.log_tail()}")
        time.sleep(0.2)


def _write_user_setting(tmp_path: Path, plugin: str, values: dict[str, Any]) -> None:
    """A user setting of one of the extension's plugins, as the Settings editor saves it."""
    name = plugin.split(":", 1)[1]
    path = tmp_path / "lab" / "user-settings" / EXTENSION / f"{name}.jupyterlab-settings"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values), encoding="utf-8")


def test_settings_drive_the_poll_and_the_item(
    jupyter_sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refresh rate and showStatusItem, changed in the Settings editor, take effect.

    The page starts with a refresh rate of an hour (a user setting written beforehand).
    Set to 0.5 s in the Settings editor, the poll asks for stats again and again: 8
    requests are awaited for at most 20 s, which the default 5 s could not give.
    Unticking "Show the status item" hides the item; ticking it shows it again.
    """
    chromium, sync_api = tb._chromium(), tb._playwright()
    _link_extension(tmp_path / "data", monkeypatch)
    with tb.lab_server(jupyter_sandbox, tmp_path) as server:
        _check_served(server)
        _write_user_setting(tmp_path, CONNECTIONS_PLUGIN, {"refreshRate": 3600})
        status, _, body = server.request(f"/lab/api/settings/{CONNECTIONS_PLUGIN}")
        assert status == 200, body[:2000]
        assert json.loads(body)["settings"]["refreshRate"] == 3600, body[:2000]
        console, frames = tb.Console(), Frames()
        with sync_api.sync_playwright() as pw:
            try:
                context = pw.chromium.launch_persistent_context(
                    str(tmp_path / "chromium-profile"),
                    executable_path=chromium,
                    args=tb.CHROMIUM_ARGS,
                    headless=True,
                    viewport=tb.VIEWPORT,
                )
            except sync_api.Error as err:
                pytest.fail(f"Chromium at {chromium} did not start under Playwright: {err}")
            try:
                page = context.pages[0] if context.pages else context.new_page()
                page.on("console", console.on_console)
                page.on("pageerror", console.on_pageerror)
                page.on("websocket", frames.on_websocket)
                with tb.evidence_on_failure(page, server, console, tmp_path):
                    _drive_settings(page, server, sync_api.expect, frames)
            finally:
                context.close()
        errors = [e for e in console.errors if not KNOWN_ERRORS.search(e)]
        assert not errors, "browser console errors:\n" + "\n".join(errors)
        log = server.log_tail(1_000_000)
        assert "Traceback" not in log, log[-6000:]
        saved = json.loads(server.request(f"/lab/api/settings/{CONNECTIONS_PLUGIN}")[2])
        assert saved["settings"]["refreshRate"] == 0.5, saved["raw"]


def _drive_settings(page: Any, server: tb.LabServer, expect: Any, frames: Frames) -> None:
    page.goto(f"{server.url}/lab?token={server.token}", wait_until="domcontentloaded")
    card = page.locator(f'.jp-LauncherCard[data-category="Notebook"][title="{DISPLAY_NAME}"]')
    expect(card).to_be_visible(timeout=60_000)
    card.click()
    tb._wait_kernel_idle(page, server, tb.KERNEL_START_S)
    kernel = _session(server, KERNEL_NAME)["kernel"]["id"]
    item = page.locator(STATUS)
    expect(item).to_contain_text(BUDGET_TEXT, timeout=UI_S * 1000)  # the hello's stats
    notebook_tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Untitled.ipynb")
    before = frames.stats_requests(kernel)

    # The refresh rate, set to 0.5 s in the Settings editor (the form saves as it changes).
    editor = _open_settings(page, expect, "Greed kernel")
    rate = editor.locator("input[id$='_refreshRate']")
    rate.fill("0.5")
    rate.press("Tab")
    # The poll asks only for the current tab's kernel: back to the notebook.
    notebook_tab.click()
    wanted = before + 8
    # At 0.5 s, 8 requests take about 4 s; at the default 5 s they would take 40 s.
    _wait_page(
        page,
        server,
        f"{wanted - before} stats requests at the new refresh rate (had {before})",
        20,
        lambda: frames.stats_requests(kernel) >= wanted,
    )
    expect(item).to_contain_text(BUDGET_TEXT)

    # showStatusItem: off hides the item on the Greed notebook, on shows it again.
    editor = _open_settings(page, expect, "Greed kernel status item")
    show = editor.locator("input[id$='_showStatusItem']")
    expect(show).to_be_checked(timeout=10_000)
    show.uncheck()
    notebook_tab.click()
    expect(item).to_be_hidden(timeout=UI_S * 1000)
    editor = _open_settings(page, expect, "Greed kernel status item")
    editor.locator("input[id$='_showStatusItem']").check()
    notebook_tab.click()
    expect(item).to_be_visible(timeout=UI_S * 1000)
    expect(item).to_contain_text(BUDGET_TEXT)


def _wait_page(page: Any, server: tb.LabServer, what: str, timeout: float, ready: Any) -> None:
    """Wait for ``ready()``, letting Playwright deliver the page's events meanwhile.

    (The sync API hands websocket frames to Python only while Python waits on it.)
    """
    deadline = time.monotonic() + timeout
    while not ready():
        tb._check_alive(server)
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout:.0f} s")
        page.wait_for_timeout(200)


def _open_settings(page: Any, expect: Any, title: str) -> Any:
    """The Settings editor (Settings menu), on the plugin whose schema has this title."""
    page.get_by_role("menuitem", name="Settings", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Settings Editor")).click()
    editor = page.locator("#setting-editor")
    expect(editor).to_be_visible(timeout=30_000)
    label = editor.locator(".jp-PluginList-entry-label-text").get_by_text(title, exact=True)
    label.click()
    expect(editor.locator(".jp-SettingsHeader-title")).to_have_text(title, timeout=10_000)
    return editor
