"""The ``greed`` comm (JSON-RPC 2.0), GreedClient and the ``%greed`` magic's output, in
real kernels. Every message the tests read is checked against the protocol schema.

Most tests share the module's kernel and one GreedClient on its client; the
Greed.js check (150 cells, one cleanup at execution 100) and the race of two clients
against periodic cleanups need fresh kernels.
"""

from __future__ import annotations

import json
import re
import threading
import time
import typing as t
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from jupyter_client.session import Session
from protocol_schema import (
    any_message,
    check_answer,
    check_event,
    check_response,
    check_result,
    event_params,
    expected_answer,
)

import greed_kernel
from greed_kernel.frontends import protocol
from greed_kernel.frontends.client import GreedClient, GreedError

from kernel_harness import KernelHarness

pytestmark = pytest.mark.timeout(120)


def number(value: t.Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_stats(stats: dict[str, t.Any]) -> None:
    """The schema's Stats, with sane values."""
    check_result("stats", stats)
    assert stats["rssBytes"] > 0
    assert stats["memoryLimitBytes"] > 0
    assert stats["version"] == greed_kernel.__version__


def check_events(client: GreedClient) -> None:
    """Every event the client got fits the schema; no response went astray."""
    for event in client.events:
        check_event(event["event"], event_params(event))
    assert client.unmatched == []


def ask(client: GreedClient, method: str, params: dict[str, t.Any] | None = None) -> t.Any:
    """A request through ``call``: the response is checked against the schema."""
    rid = uuid.uuid4().hex
    response = client.call(protocol.request(rid, method, params))
    assert response["id"] == rid
    check_response(method, response)
    if "error" in response:
        raise GreedError(response["error"]["code"], response["error"]["message"])
    return response["result"]


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


def clients(km: t.Any, n: int) -> list[t.Any]:
    """*n* more kernel clients of *km*, each with its own Session: ``km.client()`` alone
    shares the manager's session, whose id is also the shell socket's ZMQ identity, and
    two peers with one identity on the kernel's ROUTER socket do not both get their
    messages (a client-side setup error, not something a real frontend does)."""
    kcs = []
    for _ in range(n):
        session = Session(key=km.session.key, signature_scheme=km.session.signature_scheme)
        kc = km.client(session=session)
        kc.start_channels()
        kc.wait_for_ready(timeout=30)
        kcs.append(kc)
    return kcs


@pytest.fixture(scope="module")
def greed(kernel: KernelHarness) -> Iterator[GreedClient]:
    client = GreedClient(kernel.kc)
    yield client
    check_events(client)
    client.close()


# -- round trips ---------------------------------------------------------------------------


def test_hello(greed: GreedClient) -> None:
    hello = greed.hello
    assert greed.events[0] is hello
    assert hello["event"] == "hello"
    check_event("hello", event_params(hello))
    assert hello["version"] == greed_kernel.__version__
    check_stats(hello["stats"])
    config = hello["config"]
    assert config["cleanup_interval"] == 100
    assert config["optimize_interval"] == 50
    assert config["preserve"][:2] == ["torch", "nn"]
    json.dumps(hello, allow_nan=False)


def test_stats_round_trip(kernel: KernelHarness, greed: GreedClient) -> None:
    before = ask(greed, "stats")
    check_stats(before)
    ok(kernel, "stats_probe = 1")
    after = greed.stats()
    check_stats(after)
    assert after["executionCount"] == before["executionCount"] + 1
    assert "stats_probe" in after["preservedVariables"]  # touched just now: recent


def test_cleanup_and_optimize_requests(kernel: KernelHarness, greed: GreedClient) -> None:
    ok(kernel, "import torch\n_temp_comm = torch.ones(3)")
    before = greed.stats()
    start = len(greed.events)
    report = ask(greed, "cleanup")
    assert report["kind"] == "cleanup"
    assert report["trigger"] == "manual"
    # the event went to every comm before the answer, with the same report
    (event,) = [e for e in greed.events[start:] if e["event"] == "execution:cleanup"]
    assert event["report"] == report
    check_stats(event["stats"])
    assert event["stats"]["cleanupCount"] == before["cleanupCount"] + 1
    assert event["stats"]["lastCleanup"] == report["executionCount"]

    report = greed.optimize()
    assert report["kind"] == "optimize"
    assert report["trigger"] == "manual"
    assert greed.events[-1]["report"] == report
    assert greed.events[-1]["stats"]["optimizeCount"] == before["optimizeCount"] + 1


def test_preserve_request(kernel: KernelHarness, greed: GreedClient) -> None:
    # bound without the cell naming it: never touched, so not kept for being recent
    ok(kernel, "exec('comm_kept = [1, 2, 3]')")
    why = ok(kernel, "%greed why comm_kept")
    assert "Rule: marked" not in why.stdout, why
    assert "comm_kept" not in greed.stats()["preservedVariables"]

    assert ask(greed, "preserve", {"names": ["comm_kept"]}) == {
        "names": ["comm_kept"],
        "omitted": 0,
    }
    assert "comm_kept" in greed.stats()["preservedVariables"]
    why = ok(kernel, "%greed why comm_kept")
    assert why.stdout.startswith("comm_kept: "), why
    assert "Rule: marked" in why.stdout, why
    assert "marked with %greed preserve" in why.stdout, why
    assert greed.unpreserve("comm_kept") == ["comm_kept"]
    assert "comm_kept" not in greed.stats()["preservedVariables"]


def test_vars_history_and_restore_requests(kernel: KernelHarness, greed: GreedClient) -> None:
    ok(kernel, "import torch\nvars_tensor = torch.zeros(1024, 256)")
    answer = ask(greed, "vars")
    rows = {r["name"]: r for r in answer["variables"]}
    row = rows["vars_tensor"]
    assert row["size"] == 1024 * 256 * 4
    assert row["device"] == "cpu"
    assert "torch" not in rows  # modules are not the user's variables
    assert [r["name"] for r in greed.vars()] == [r["name"] for r in answer["variables"]]
    greed.cleanup()
    reports = ask(greed, "history")["reports"]
    assert reports and reports[-1]["kind"] == "cleanup"
    assert greed.history() == reports
    restored = ask(greed, "restore", {"all": True})
    assert restored["bytes"] >= 0
    with pytest.raises(GreedError) as raised:
        ask(greed, "restore", {"names": ["vars_tensor_nope"]})
    assert raised.value.code == protocol.INVALID_PARAMS
    assert "not paged out" in raised.value.message


def test_messages_are_bounded(kernel: KernelHarness, greed: GreedClient) -> None:
    names = [f"bounded_{i}" for i in range(500)]
    ok(kernel, "for _i_b in range(500):\n    globals()[f'bounded_{_i_b}'] = _i_b\ndel _i_b")
    try:
        answer = ask(greed, "preserve", {"names": names})
        assert len(answer["names"]) == 200 and answer["omitted"] == 300
        stats = greed.stats()
        assert len(stats["preservedVariables"]) <= 200
        assert stats["preservedVariablesOmitted"] >= 300
        assert len(stats["preservedVariables"]) + stats["preservedVariablesOmitted"] >= 500
        answer = ask(greed, "vars")
        assert len(answer["variables"]) <= 200
        assert answer["omitted"] >= 300
    finally:
        ask(greed, "unpreserve", {"names": names})
        ok(
            kernel,
            "for _n in [n for n in globals() if n.startswith('bounded_')]:\n"
            "    del globals()[_n]\n"
            "del _n",
        )


# -- several frontends -----------------------------------------------------------------------


def test_two_clients_both_receive_events(kernel: KernelHarness) -> None:
    """Two frontends, each with its own comm, both get the events; answers only the one
    that asked."""
    kcs = clients(kernel.km, 2)
    opened: list[GreedClient] = []
    try:
        opened.extend(GreedClient(kc) for kc in kcs)
        first, second = opened
        assert first.comm_id != second.comm_id
        start = len(second.events)
        report = first.cleanup()
        seen = wait_for(second, lambda e: e.get("event") == "execution:cleanup", start)
        assert seen["report"] == report

        # a closed comm gets nothing more: the event would come before the cell's output.
        # The two clients reach the kernel over separate connections, which keep no order
        # between them: a round trip on the second's own connection makes sure its close
        # was handled before the first asks (without it, CI once saw the cleanup first).
        second.close()
        assert second.execute("'closed'", timeout=30)["status"] == "ok"
        start = len(second.events)
        first.cleanup()
        reply = second.execute("'after'", timeout=30)
        assert reply["status"] == "ok"
        assert second.events[start:] == []
        for client in opened:
            check_events(client)
    finally:
        for client in opened:
            client.close()
        for kc in kcs:
            kc.stop_channels()


def test_two_clients_racing_periodic_cleanups_get_only_their_own_answers(
    new_kernel: t.Any,
) -> None:
    """Two frontends on one kernel that cleans up after every cell: each runs cells and
    asks for stats, cleanups and variables from its own thread, so requests, answers
    and the broadcast cleanups interleave. A request is never answered by an event, by
    another request's answer or on the other comm."""
    rounds = 8
    with new_kernel("--GreedKernel.cleanup_interval=1") as k:
        kcs = clients(k.km, 2)
        opened = [GreedClient(kc) for kc in kcs]
        answers: dict[str, list[tuple[str, t.Any]]] = {"a": [], "b": []}
        failures: list[BaseException] = []

        def work(client: GreedClient, name: str) -> None:
            try:
                for i in range(rounds):
                    assert client.execute(f"{name}_{i} = [{i}] * 1000")["status"] == "ok"
                    answers[name].append(("stats", client.stats()))
                    answers[name].append(("cleanup", client.cleanup()))
                    answers[name].append(("vars", client.request("vars")))
            except BaseException as e:  # reported by the main thread
                failures.append(e)

        threads = [
            threading.Thread(target=work, args=(client, name))
            for client, name in zip(opened, "ab", strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=100)
        assert not failures, failures
        assert not any(thread.is_alive() for thread in threads)
        mine = {}
        for name in "ab":
            assert len(answers[name]) == 3 * rounds
            for method, result in answers[name]:
                check_result(method, result)
            manual = [r for m, r in answers[name] if m == "cleanup"]
            assert all(r["trigger"] == "manual" for r in manual)  # never a periodic one
            mine[name] = {json.dumps(r, sort_keys=True) for r in manual}
            assert len(mine[name]) == rounds
        assert not mine["a"] & mine["b"]
        for client in opened:
            # every cleanup went to both comms: both clients' manual ones, and the
            # periodic ones up to the one after the last cell
            for report in mine["a"] | mine["b"]:
                wait_for(
                    client,
                    lambda e, r=report: (
                        e["event"] == "execution:cleanup"
                        and json.dumps(e["report"], sort_keys=True) == r
                    ),
                )
            wait_for(
                client,
                lambda e: (
                    e["event"] == "execution:cleanup"
                    and e["report"]["trigger"] == "periodic"
                    and e["report"]["executionCount"] == 2 * rounds
                ),
            )
            check_events(client)  # and no answer went to the wrong client
        for client in opened:
            client.close()
        for kc in kcs:
            kc.stop_channels()


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
    """IPython's UsageError: the cell fails with one line on stderr, no traceback."""
    result = kernel.execute(line)
    assert result.status == "error", result
    assert result.error is None, result  # no error output, no traceback
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("UsageError: ")
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
        # it runs in slices: cells sent back to back may end before its last one
        assert 100 <= event["stats"]["executionCount"] < 150
        assert event["report"]["trigger"] == "periodic"
        assert event["report"]["executionCount"] == 100
        check_stats(event["stats"])
        assert event["stats"]["cleanupCount"] == 1
        check_events(client)
        client.close()


# -- malformed requests ------------------------------------------------------------------------


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=any_message)
# a hostile client: floats JSON has no word for (nan, inf) go out all the same, and
# jupyter_client warns as it packs them
@pytest.mark.filterwarnings("ignore:Message serialization failed:UserWarning")
def test_any_message_gets_the_answer_the_schema_says(
    kernel: KernelHarness, greed: GreedClient, data: t.Any
) -> None:
    expected = expected_answer(data, paged=None)
    if expected is None:  # a notification: run, never answered
        greed.send(data)
    else:
        check_answer(data, greed.call(data, timeout=10), paged=None)
    greed.stats()  # answered after the message: no stray answer came before it
    assert greed.unmatched == []


def test_kernel_still_works_after_malformed_requests(
    kernel: KernelHarness, greed: GreedClient
) -> None:
    for data in (None, [], "stats", {"request": "stats"}, {"jsonrpc": "2.0", "method": 1}):
        answer = greed.call(data)
        assert answer["id"] is None
        assert answer["error"]["code"] == protocol.INVALID_REQUEST
    with pytest.raises(GreedError) as raised:
        greed.request("nope")
    assert raised.value.code == protocol.METHOD_NOT_FOUND
    assert kernel.execute("1+1").data == "2"
    check_stats(greed.stats())


# -- requests wait for the main thread and for the cell ------------------------------------


class RawComm:
    """A greed comm driven by hand on the harness's client (optionally on a subshell)."""

    def __init__(self, kernel: KernelHarness, subshell_id: str | None = None) -> None:
        self.kernel, self.subshell_id, self.comm_id = kernel, subshell_id, uuid.uuid4().hex

    def send(self, msg_type: str, content: dict[str, t.Any]) -> None:
        session = self.kernel.kc.session
        header = session.msg_header(msg_type)
        if self.subshell_id:
            header["subshell_id"] = self.subshell_id  # ipykernel answers there too
        msg = session.msg(msg_type, {"comm_id": self.comm_id, **content}, header=header)
        self.kernel.kc.shell_channel.send(msg)

    def ask(self, id: str, method: str) -> None:
        self.send("comm_msg", {"data": protocol.request(id, method)})

    def received(self) -> list[dict[str, t.Any]]:
        return [
            m["content"]["data"]
            for m in self.kernel.comm_messages
            if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == self.comm_id
        ]

    def wait(self, predicate: t.Callable[[list[dict[str, t.Any]]], bool]) -> None:
        """Read IOPub until *predicate(received)* holds (at most 30 s)."""
        deadline = time.monotonic() + 30
        while not predicate(self.received()) and time.monotonic() < deadline:
            self.kernel.drain_iopub(timeout=0.2)
        assert predicate(self.received()), self.received()

    def response(self, id: str) -> dict[str, t.Any]:
        self.wait(lambda got: any(m.get("id") == id for m in got))
        (response,) = [m for m in self.received() if m.get("id") == id]
        return response


def run_cell_with_requests(kernel: KernelHarness, comm: RawComm, code: str) -> None:
    """Open *comm*, run *code* and, once the cell is busy, ask for stats and a cleanup:
    both are answered after the cell, with its execution counted."""
    comm.send("comm_open", {"target_name": "greed", "data": {}})
    comm.wait(lambda got: bool(got))
    assert comm.received()[0]["method"] == "hello"
    cell = kernel.submit(code)
    kernel.iopub_until(cell, kernel.is_status("busy"))
    comm.ask("s", "stats")
    comm.ask("c", "cleanup")
    result = kernel.collect(cell)
    assert result.status == "ok", result
    count = result.reply["execution_count"]
    stats, cleanup = comm.response("s"), comm.response("c")
    check_response("stats", stats)
    check_response("cleanup", cleanup)
    # executionCount counts the cells that ended: had they run during the cell, count - 1
    assert stats["result"]["executionCount"] == count
    assert cleanup["result"]["executionCount"] == count
    assert cleanup["result"]["trigger"] == "manual"
    ids = [m.get("id") for m in comm.received() if protocol.is_response(m)]
    assert ids == ["s", "c"]


def test_requests_through_a_subshell_wait_for_the_main_thread(kernel: KernelHarness) -> None:
    """JupyterLab may route a comm through a kernel subshell (another thread): its open
    and requests run on the main thread, and not while a cell runs there."""
    reply = kernel.request("create_subshell_request", {}, channel="control")
    subshell_id = reply["content"]["subshell_id"]
    comm = RawComm(kernel, subshell_id)
    try:
        run_cell_with_requests(kernel, comm, "import time\ntime.sleep(1.5)")
    finally:
        comm.send("comm_close", {"data": {}})
        kernel.request("delete_subshell_request", {"subshell_id": subshell_id}, channel="control")


def test_requests_wait_for_a_cell_that_awaits(kernel: KernelHarness) -> None:
    """While a cell awaits, the event loop runs and delivers comm messages: requests
    made then wait for the cell to end."""
    comm = RawComm(kernel)
    try:
        run_cell_with_requests(kernel, comm, "import asyncio\nawait asyncio.sleep(1.5)")
    finally:
        comm.send("comm_close", {"data": {}})
