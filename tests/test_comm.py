"""The ``greed`` comm, GreedClient and the ``%greed`` magic's output, in real kernels.

Most tests share the module's kernel and one GreedClient on its client; the
Greed.js check (150 cells, one cleanup at execution 100) needs a fresh kernel.
"""

from __future__ import annotations

import json
import re
import time
import typing as t
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jupyter_client.session import Session

import greed_kernel
from greed_kernel.client import GreedClient, GreedError

from kernel_harness import KernelHarness

pytestmark = pytest.mark.timeout(120)

STATS_KEYS = {
    "executionCount",
    "avgExecutionTime",
    "memoryPressure",
    "idleTime",
    "preservedVariables",
    "cleanupCount",
    "optimizeCount",
    "lastCleanup",
    "rssBytes",
    "memoryLimitBytes",
    "cuda",
    "version",
}
REQUESTS = ("stats", "cleanup", "optimize", "preserve", "unpreserve", "vars")
ANSWERS = {
    "stats": "stats",
    "cleanup": "execution:cleanup",
    "optimize": "execution:optimize",
    "preserve": "preserved",
    "unpreserve": "unpreserved",
    "vars": "vars",
}


def number(value: t.Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_stats(stats: dict[str, t.Any]) -> None:
    """Every key, with sane types, and JSON-clean."""
    assert set(stats) >= STATS_KEYS, sorted(STATS_KEYS - set(stats))
    json.dumps(stats, allow_nan=False)
    for key in ("executionCount", "cleanupCount", "optimizeCount", "rssBytes"):
        assert isinstance(stats[key], int) and not isinstance(stats[key], bool), key
        assert stats[key] >= 0, key
    for key in ("avgExecutionTime", "idleTime"):
        assert number(stats[key]) and stats[key] >= 0, key
    assert number(stats["memoryPressure"]) and 0.0 <= stats["memoryPressure"] <= 1.0
    assert stats["rssBytes"] > 0
    assert isinstance(stats["memoryLimitBytes"], int) and stats["memoryLimitBytes"] > 0
    assert isinstance(stats["preservedVariables"], list)
    assert all(isinstance(n, str) for n in stats["preservedVariables"])
    assert stats["lastCleanup"] is None or isinstance(stats["lastCleanup"], int)
    assert isinstance(stats["cuda"], list)
    assert stats["version"] == greed_kernel.__version__


def ok(k: KernelHarness, code: str) -> t.Any:
    result = k.execute(code)
    assert result.status == "ok", result
    assert result.error is None, result
    return result


def display_data(result: t.Any) -> list[dict[str, t.Any]]:
    return [m["content"]["data"] for m in result.outputs if m["msg_type"] == "display_data"]


def wait_for(client: GreedClient, match: t.Any, start: int = 0, timeout: float = 30) -> t.Any:
    """The first event from index *start* on that satisfies *match*."""
    return client.wait_for(match, timeout=timeout, since=start)


@pytest.fixture(scope="module")
def greed(kernel: KernelHarness) -> Iterator[GreedClient]:
    client = GreedClient(kernel.kc)
    yield client
    client.close()


# -- round trips ---------------------------------------------------------------------------


def test_hello(greed: GreedClient) -> None:
    hello = greed.hello
    assert hello["event"] == "hello"
    assert hello["version"] == greed_kernel.__version__
    check_stats(hello["stats"])
    config = hello["config"]
    assert config["cleanup_interval"] == 100
    assert config["optimize_interval"] == 50
    assert config["preserve"][:2] == ["torch", "nn"]
    json.dumps(hello, allow_nan=False)


def test_stats_round_trip(kernel: KernelHarness, greed: GreedClient) -> None:
    before = greed.stats()
    check_stats(before)
    ok(kernel, "stats_probe = 1")
    after = greed.stats()
    check_stats(after)
    assert after["executionCount"] == before["executionCount"] + 1
    assert "stats_probe" in after["preservedVariables"]  # touched just now: recent


def test_cleanup_and_optimize_requests(kernel: KernelHarness, greed: GreedClient) -> None:
    ok(kernel, "import torch\n_temp_comm = torch.ones(3)")
    before = greed.stats()
    report = greed.cleanup()
    assert report["kind"] == "cleanup"
    assert report["trigger"] == "manual"
    json.dumps(report, allow_nan=False)
    event = greed.events[-1]
    assert event["event"] == "execution:cleanup"
    check_stats(event["stats"])
    assert event["stats"]["cleanupCount"] == before["cleanupCount"] + 1
    assert event["stats"]["lastCleanup"] == report["executionCount"]

    report = greed.optimize()
    assert report["kind"] == "optimize"
    assert report["trigger"] == "manual"
    assert isinstance(report["gradsCleared"], int)
    assert greed.events[-1]["stats"]["optimizeCount"] == before["optimizeCount"] + 1


def test_preserve_request(kernel: KernelHarness, greed: GreedClient) -> None:
    # bound without the cell naming it: never touched, so not kept for being recent
    ok(kernel, "exec('comm_kept = [1, 2, 3]')")
    why = ok(kernel, "%greed why comm_kept")
    assert "Rule: marked" not in why.stdout, why
    assert "comm_kept" not in greed.stats()["preservedVariables"]

    assert greed.preserve("comm_kept") == ["comm_kept"]
    assert "comm_kept" in greed.stats()["preservedVariables"]
    why = ok(kernel, "%greed why comm_kept")
    assert why.stdout.startswith("comm_kept: "), why
    assert "Rule: marked" in why.stdout, why
    assert "marked with %greed preserve" in why.stdout, why


def test_vars_request(kernel: KernelHarness, greed: GreedClient) -> None:
    ok(kernel, "import torch\nvars_tensor = torch.zeros(1024, 256)")
    rows = {r["name"]: r for r in greed.variables()}
    row = rows["vars_tensor"]
    assert row["size"] == 1024 * 256 * 4
    assert row["device"] == "cpu"
    assert "torch" not in rows  # modules are not the user's variables
    json.dumps(list(rows.values()), allow_nan=False)


def test_two_clients_both_receive_events(kernel: KernelHarness) -> None:
    """Two frontends, each with its own comm, both get the events.

    Each client gets its own Session: ``km.client()`` alone shares the manager's session,
    whose id is also the shell socket's ZMQ identity, and two peers with one identity on
    the kernel's ROUTER socket do not both get their messages (a client-side setup error,
    not something a real frontend does).
    """
    km = kernel.km
    kcs = [
        km.client(session=Session(key=km.session.key, signature_scheme=km.session.signature_scheme))
        for _ in range(2)
    ]
    clients: list[GreedClient] = []
    try:
        for kc in kcs:
            kc.start_channels()
            kc.wait_for_ready(timeout=30)
            clients.append(GreedClient(kc))
        first, second = clients
        assert first.comm_id != second.comm_id
        start = len(second.events)
        report = first.cleanup()
        seen = wait_for(second, lambda e: e.get("event") == "execution:cleanup", start)
        assert seen["report"] == report

        # a closed comm gets nothing more: the event would come before the cell's output
        second.close()
        start = len(second.events)
        first.cleanup()
        reply = second.execute("'after'", timeout=30)
        assert reply["status"] == "ok"
        assert second.events[start:] == []
    finally:
        for client in clients:
            client.close()
        for kc in kcs:
            kc.stop_channels()


def test_messages_are_bounded(kernel: KernelHarness, greed: GreedClient) -> None:
    names = [f"bounded_{i}" for i in range(500)]
    ok(kernel, "for _i_b in range(500):\n    globals()[f'bounded_{_i_b}'] = _i_b\ndel _i_b")
    try:
        answered = greed.preserve(*names)
        assert len(answered) <= 200
        stats = greed.stats()
        assert len(stats["preservedVariables"]) <= 200
        assert stats["preservedVariablesOmitted"] >= 300
        assert len(stats["preservedVariables"]) + stats["preservedVariablesOmitted"] >= 500
        answer = greed.request({"request": "vars"}, "vars")
        assert len(answer["variables"]) <= 200
        assert answer["omitted"] >= 300
    finally:
        greed.request({"request": "unpreserve", "names": names}, "unpreserved")
        ok(
            kernel,
            "for _n in [n for n in globals() if n.startswith('bounded_')]:\n"
            "    del globals()[_n]\n"
            "del _n",
        )


# -- the magic's output ----------------------------------------------------------------------


def test_greed_stats_magic(kernel: KernelHarness) -> None:
    result = ok(kernel, "%greed stats")
    shown = display_data(result)
    assert len(shown) == 1, result.outputs
    assert {"text/plain", "text/html"} <= set(shown[0])
    text = shown[0]["text/plain"]
    for key in ("executionCount", "memoryPressure", "preservedVariables", "cleanupCount"):
        assert key in text
    assert "<table" in shown[0]["text/html"]
    assert result.data is None  # nothing lands in Out


def test_greed_status_magic(kernel: KernelHarness) -> None:
    result = ok(kernel, "%greed status")
    shown = display_data(result)
    assert len(shown) == 1
    text = shown[0]["text/plain"]
    assert greed_kernel.__version__ in text
    assert "GreedKernel.cleanup_interval" in text
    assert "next periodic cleanup" in text
    assert "text/html" in shown[0]


@pytest.mark.parametrize("line", ["%greed bogus", "%greed why nosuchname", "%greed why"])
def test_bad_magic_requests_answer_one_line(kernel: KernelHarness, line: str) -> None:
    result = kernel.execute(line)
    assert result.status == "ok", result
    assert result.error is None, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Greed: ")
    assert "Traceback" not in result.stderr


def test_greed_vars_magic_lists_a_tensor_with_its_size(kernel: KernelHarness) -> None:
    ok(kernel, "import torch\nx = torch.zeros(1024, 256)")
    result = ok(kernel, "%greed vars")
    shown = display_data(result)
    assert len(shown) == 1
    text = shown[0]["text/plain"]
    row = re.search(r"^x\s.*$", text, re.M)
    assert row is not None, text
    assert "1.0 MiB" in row.group(0), row.group(0)
    assert "cpu" in row.group(0)
    assert "<td style='text-align:left'>x</td>" in shown[0]["text/html"]


# -- Greed.js's verification -------------------------------------------------------------------


def test_150_cells_give_one_cleanup_at_execution_100(new_kernel: t.Any) -> None:
    with new_kernel() as k:
        client = GreedClient(k.kc)
        cleanups: list[dict[str, t.Any]] = []
        client.on("execution:cleanup", cleanups.append)
        for i in range(150):
            reply = client.execute(f"print({i})", timeout=30)
            assert reply["status"] == "ok"
        assert len(cleanups) == 1, [c["report"]["trigger"] for c in cleanups]
        event = cleanups[0]
        assert event["stats"]["executionCount"] == 100
        assert event["report"]["trigger"] == "periodic"
        assert event["report"]["executionCount"] == 100
        check_stats(event["stats"])
        assert event["stats"]["cleanupCount"] == 1
        client.close()


# -- malformed requests ------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
request_names = st.sampled_from(
    [*REQUESTS, "", "STATS", "cleanup ", "handle", "_stats", "__class__", "hello", "error"]
) | st.text(max_size=30)
identifiers = st.from_regex(r"zz_[a-z0-9_]{0,10}", fullmatch=True)
names_values = (
    json_values
    | st.lists(identifiers, min_size=1, max_size=5)
    | st.lists(identifiers | st.text(max_size=10) | json_values, max_size=5)
    | st.just([f"zz_{i}" for i in range(1001)])  # too many
    | st.just(["zz_" + "a" * 300])  # too long
    | st.just(["zz ok"])
)
huge = st.integers(1, 1_000_000).map(lambda n: "x" * n)
requests = st.one_of(
    json_values,
    st.fixed_dictionaries({"request": json_values}),
    st.fixed_dictionaries({"request": request_names}),
    st.builds(
        lambda r, n, extra: {"request": r, "names": n, **extra},
        request_names,
        names_values,
        st.dictionaries(st.text(max_size=5), json_values, max_size=2),
    ),
    st.builds(lambda s: {"request": s}, huge),
    st.builds(lambda s: {"request": "preserve", "names": [s]}, huge),
    st.builds(lambda s: {"nested": [{"request": s}]}, huge),
)


UNANSWERED: list[t.Any] = []


def expected_answer(data: t.Any) -> str:
    """The event the comm contract promises for *data*."""
    if not isinstance(data, dict) or not isinstance(data.get("request"), str):
        return "error"
    name = data["request"]
    if name not in ANSWERS:
        return "error"
    if name in ("preserve", "unpreserve"):
        names = data.get("names")
        if not isinstance(names, list) or not names or len(names) > 1000:
            return "error"
        if not all(isinstance(n, str) and len(n) <= 256 and n.isidentifier() for n in names):
            return "error"
    return ANSWERS[name]


@settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=requests)
def test_malformed_requests_get_error_events(
    kernel: KernelHarness, greed: GreedClient, data: t.Any
) -> None:
    # once the comm stopped answering, fail every example at once (no 10 s waits while
    # hypothesis shrinks)
    assert not UNANSWERED, f"an earlier request got no answer: {UNANSWERED[0]!r:.300}"
    start = len(greed.events)
    greed._send("comm_msg", {"data": data})
    try:
        answer = wait_for(greed, lambda e: True, start, timeout=10)
    except TimeoutError:
        UNANSWERED.append(data)
        raise
    expected = expected_answer(data)
    assert answer["event"] == expected, (repr(data)[:300], answer)
    if expected == "error":
        assert isinstance(answer.get("message"), str) and answer["message"]
        assert len(answer["message"]) < 1000  # a huge request is not echoed back
        with pytest.raises(GreedError):
            greed.request(data, expect="never-sent")


def test_kernel_still_works_after_malformed_requests(
    kernel: KernelHarness, greed: GreedClient
) -> None:
    for data in (None, [], "stats", {"request": 1}, {"request": "nope"}, {"names": []}):
        with pytest.raises(GreedError):
            greed.request(data, expect="stats")  # type: ignore[arg-type]
    assert kernel.execute("1+1").data == "2"
    check_stats(greed.stats())


def test_requests_through_a_subshell_wait_for_the_main_thread(kernel: KernelHarness) -> None:
    """JupyterLab may route a comm through a kernel subshell (another thread); a cleanup
    requested that way must not run while a cell is running on the main thread."""
    reply = kernel.request("create_subshell_request", {}, channel="control")
    subshell_id = reply["content"]["subshell_id"]
    session, comm_id = kernel.kc.session, uuid.uuid4().hex

    def send(msg_type: str, content: dict[str, t.Any]) -> None:
        header = session.msg_header(msg_type)
        header["subshell_id"] = subshell_id  # ipykernel then answers this comm there too
        kernel.kc.shell_channel.send(
            session.msg(msg_type, {"comm_id": comm_id, **content}, header=header)
        )

    def events() -> list[dict[str, t.Any]]:
        return [
            m["content"]["data"]
            for m in kernel.comm_messages
            if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id
        ]

    try:
        send("comm_open", {"target_name": "greed", "data": {}})
        deadline = time.monotonic() + 30
        while not events() and time.monotonic() < deadline:
            kernel.drain_iopub(timeout=0.5)
        assert events() and events()[0]["event"] == "hello"
        cell = kernel.submit(
            "import time\n"
            "_c0 = get_ipython().kernel.greed.stats.cleanup_count\n"
            "time.sleep(2)\n"
            "print(get_ipython().kernel.greed.stats.cleanup_count - _c0)"
        )
        kernel.iopub_until(cell, kernel.is_status("busy"))
        send("comm_msg", {"data": {"request": "cleanup"}})
        result = kernel.collect(cell)
        assert result.stdout.strip() == "0", result  # no cleanup ran during the cell
        while time.monotonic() < deadline + 30 and not any(
            e.get("event") == "execution:cleanup" for e in events()
        ):
            kernel.drain_iopub(timeout=0.5)
        (event,) = [e for e in events() if e.get("event") == "execution:cleanup"]
        assert event["report"]["trigger"] == "manual"
    finally:
        send("comm_close", {"data": {}})
        kernel.request("delete_subshell_request", {"subshell_id": subshell_id}, channel="control")


def test_requests_wait_for_a_cell_that_awaits(kernel: KernelHarness) -> None:
    """While a cell awaits, the event loop runs and delivers comm messages: a cleanup
    requested then must wait for the cell to end."""
    session, comm_id = kernel.kc.session, uuid.uuid4().hex

    def send(msg_type: str, content: dict[str, t.Any]) -> None:
        kernel.kc.shell_channel.send(session.msg(msg_type, {"comm_id": comm_id, **content}))

    def events() -> list[dict[str, t.Any]]:
        return [
            m["content"]["data"]
            for m in kernel.comm_messages
            if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id
        ]

    def wait(predicate: t.Callable[[], bool]) -> None:
        deadline = time.monotonic() + 30
        while not predicate() and time.monotonic() < deadline:
            kernel.drain_iopub(timeout=0.2)
        assert predicate()

    send("comm_open", {"target_name": "greed", "data": {}})
    try:
        wait(lambda: bool(events()))
        cell = kernel.submit(
            "import asyncio\n"
            "_c0 = get_ipython().kernel.greed.stats.cleanup_count\n"
            "await asyncio.sleep(1.5)\n"
            "print(get_ipython().kernel.greed.stats.cleanup_count - _c0)"
        )
        kernel.iopub_until(cell, kernel.is_status("busy"))
        send("comm_msg", {"data": {"request": "stats"}})  # answered during the await
        send("comm_msg", {"data": {"request": "cleanup"}})  # waits for the cell
        result = kernel.collect(cell)
        assert result.stdout.strip() == "0", result
        assert any(e.get("event") == "stats" for e in events())
        wait(lambda: any(e.get("event") == "execution:cleanup" for e in events()))
    finally:
        send("comm_close", {"data": {}})
