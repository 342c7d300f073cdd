"""The ``greed`` comm service (greed_kernel/channel.py) in-process: JSON-RPC 2.0 over
dummy comms, on a fake engine service. Every message sent is checked against the
protocol schema."""

from __future__ import annotations

import copy
import threading
import typing as t
from collections.abc import Callable, Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from protocol_schema import (
    SCHEMA,
    any_message,
    check_answer,
    check_event,
    check_message,
    check_response,
    expected_answer,
)

import greed_kernel
from greed_kernel.frontends import protocol
from greed_kernel.frontends.channel import Channel
from greed_kernel.frontends.rules import MAX_REQUEST_NAMES

pytestmark = pytest.mark.timeout(60)

BUDGET = {
    "limitBytes": 8 << 30,
    "unreclaimableBytes": 1 << 30,
    "pagedBytes": 0,
    "threshold": 0.8,
    "lowWatermark": 0.7,
    "held": True,
}
STATS: dict[str, t.Any] = {
    "executionCount": 3,
    "avgExecutionTime": 1.5,
    "memoryPressure": 0.1,
    "idleTime": 20.0,
    "preservedVariables": ["x"],
    "preservedVariablesOmitted": 0,
    "cleanupCount": 0,
    "optimizeCount": 0,
    "lastCleanup": None,
    "rssBytes": 100 << 20,
    "memoryLimitBytes": 8 << 30,
    "cuda": [],
    "version": greed_kernel.__version__,
    "memoryBudget": BUDGET,
    "paged": ["w"],
    "pagedOmitted": 0,
    "pagedBytes": 4096,
    "pagingDirectory": "/var/tmp",
    "pagingNotice": "",
}
COMMON = {
    "executionCount": 3,
    "time": 1.7e9,
    "durationMs": 2.5,
    "rssBefore": 200,
    "rssAfter": 100,
    "freedBytes": 100,
    "cudaBefore": [],
    "cudaAfter": [],
}
CLEANUP = {
    "kind": "cleanup",
    "trigger": "manual",
    **COMMON,
    "deleted": ["_temp_a"],
    "deletedOmitted": 0,
    "evicted": [],
    "outputsReleased": 1,
    "errorReleased": False,
    "paged": [],
    "pagedBytes": 0,
    "gcCollected": 5,
    "mallocTrim": True,
    "preserved": ["x"],
    "preservedOmitted": 0,
}
OPTIMIZE = {
    "kind": "optimize",
    "trigger": "manual",
    **COMMON,
    "gradsCleared": 0,
    "gcCollected": 0,
    "cudaEmptied": [],
}
ROW = {
    "name": "x",
    "type": "int",
    "size": 28,
    "device": None,
    "lastTouchedAgo": 1.0,
    "lastTouchedCell": 3,
    "decision": "keep",
    "rule": "recent",
    "reason": "kept: touched 1 s ago",
    "pagedBytes": 0,
}


MEMORY = {
    "limitBytes": 1536 << 20,
    "guardThreshold": 0.95,
    "memoryThreshold": 0.8,
    "samples": [{"t": 1.5e9, "unreclaimableBytes": 300 << 20, "pagedBytes": 0}],
    "markers": [{"t": 1.5e9, "kind": "guard", "executionCount": 3}],
    "guardStops": 1,
}
PREVIOUS = {
    "message": "Greed: the previous kernel of this notebook was killed at cell 5, out of memory "
    "(1.49 of its 1.50 GiB).",
    "cause": "oom",
    "signal": None,
    "executionCount": 5,
    "unreclaimableBytes": 1600000000,
    "limitBytes": 1536 << 20,
    "inOneCall": False,
    "pid": 4242,
    "startedAt": 1.5e9,
    "lastSeenAt": 1.5e9 + 60,
}


CHECKPOINT = {
    "id": "2", "time": 1.8e9, "cell": 7, "bytes": 4096, "names": 1, "unstorable": [],
    "leftOut": [],
}  # fmt: skip


class FakeService:
    """The engine's service to the channel, with a cell that can be running."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, t.Any]] = []
        self.threads: set[threading.Thread] = set()
        self.cell_running = False
        self.deferred: list[Callable[[], None]] = []
        self.paged_out = {"w": 4096, "v": 10}
        self.rows = [dict(ROW, name=f"v{i}") for i in range(3)]
        self.failing: set[str] = set()
        self.raising: set[str] = set()
        self.publish: Callable[[str, dict[str, t.Any]], None] = lambda method, params: None

    def _call(self, name: str, arg: t.Any = None) -> None:
        self.threads.add(threading.current_thread())
        self.calls.append((name, arg))
        if name in self.raising:
            raise RuntimeError("boom " + "x" * 5000)

    def stats(self) -> dict[str, t.Any]:
        self._call("stats")
        return copy.deepcopy(STATS)

    def vars(self) -> list[dict[str, t.Any]]:
        self._call("vars")
        return [dict(r) for r in self.rows]

    def history(self) -> list[dict[str, t.Any]]:
        self._call("history")
        return [dict(CLEANUP), dict(OPTIMIZE)]

    def cleanup(self, trigger: str, full: bool = False) -> dict[str, t.Any] | None:
        self._call("cleanup", trigger)
        if "cleanup" in self.failing:
            return None
        report = dict(CLEANUP, trigger=trigger)
        self.publish("execution:cleanup", {"stats": self.stats(), "report": report})
        return report

    def optimize(self, trigger: str) -> dict[str, t.Any] | None:
        self._call("optimize", trigger)
        if "optimize" in self.failing:
            return None
        report = dict(OPTIMIZE, trigger=trigger)
        self.publish("execution:optimize", {"stats": self.stats(), "report": report})
        return report

    def preserve(self, names: Iterable[str]) -> None:
        self._call("preserve", list(names))

    def unpreserve(self, names: Iterable[str]) -> None:
        self._call("unpreserve", list(names))

    def paged(self) -> dict[str, int]:
        self._call("paged")
        return dict(self.paged_out)

    def restore(self, names: Iterable[str]) -> int:
        names = list(names)
        self._call("restore", names)
        return sum(self.paged_out.get(n, 0) for n in names)

    def memory(self) -> dict[str, t.Any]:
        self._call("memory")
        return copy.deepcopy(MEMORY)

    def previous_kernel(self) -> dict[str, t.Any] | None:
        return copy.deepcopy(PREVIOUS)

    def resumable(self) -> dict[str, t.Any] | None:
        return {"id": "2", "time": 1.8e9, "cell": 7, "bytes": 4096}

    def checkpoint(self) -> dict[str, t.Any] | None:
        self._call("checkpoint")
        return dict(CHECKPOINT)

    def checkpoints(self) -> list[dict[str, t.Any]]:
        self._call("checkpoints")
        return [dict(CHECKPOINT)]

    def resume(self, id: str | None = None) -> dict[str, t.Any]:
        self._call("resume", id)
        if id == "9":
            raise LookupError("no checkpoint '9'")
        return {
            "checkpoint": dict(CHECKPOINT), "bound": ["a"], "failed": {}, "unstorable": [],
            "leftOut": [], "notes": [], "replay": {}, "seconds": 0.1,
        }  # fmt: skip

    def forget(self) -> int:
        self._call("forget")
        return 4096

    def when_no_cell(self, fn: Callable[[], None]) -> None:
        if self.cell_running:
            self.deferred.append(fn)
        else:
            fn()

    def end_cell(self) -> None:
        self.cell_running = False
        while self.deferred:
            self.deferred.pop(0)()

    def settings(self) -> dict[str, t.Any]:
        self._call("settings")
        return {
            "cleanup_interval": 100,
            "optimize_interval": 50,
            "memory_threshold": 0.8,
            "preserve": ["torch"],
            "evict": "page",
        }


class DummyComm:
    """What ipykernel's comm gives the channel; records what the kernel sends."""

    def __init__(self, comm_id: str) -> None:
        self.comm_id = comm_id
        self.sent: list[dict[str, t.Any]] = []
        self._closed = False
        self.msg_callback: Callable[[dict[str, t.Any]], None] | None = None
        self.close_callback: Callable[[dict[str, t.Any]], None] | None = None
        self.fail = False

    def send(self, data: t.Any = None) -> None:
        if self.fail:
            raise OSError("socket gone")
        check_message(data)
        self.sent.append(data)

    def on_msg(self, callback: Callable[[dict[str, t.Any]], None] | None) -> None:
        self.msg_callback = callback

    def on_close(self, callback: Callable[[dict[str, t.Any]], None] | None) -> None:
        self.close_callback = callback

    # -- the frontend's side -------------------------------------------------------------
    def deliver(self, data: t.Any) -> None:
        assert self.msg_callback is not None
        self.msg_callback({"content": {"comm_id": self.comm_id, "data": data}})

    def ask(self, id: t.Any, method: str, params: t.Any = None) -> None:
        self.deliver(protocol.request(id, method, params))

    def close(self) -> None:
        self._closed = True
        assert self.close_callback is not None
        self.close_callback({"content": {"comm_id": self.comm_id, "data": {}}})

    def responses(self) -> list[dict[str, t.Any]]:
        return [m for m in self.sent if protocol.is_response(m)]

    def events(self) -> list[dict[str, t.Any]]:
        return [m for m in self.sent if protocol.is_notification(m)]


class CommManager:
    def __init__(self) -> None:
        self.targets: dict[str, t.Any] = {}

    def register_target(self, name: str, callback: t.Any) -> None:
        self.targets[name] = callback


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
def channel(service: FakeService) -> Channel:
    channel = Channel(service=service)
    service.publish = channel.notify
    return channel


def open_comm(channel: Channel, comm_id: str = "a") -> DummyComm:
    comm = DummyComm(comm_id)
    channel.on_open(comm, {"content": {"comm_id": comm_id, "target_name": "greed", "data": {}}})
    return comm


def reply(comm: DummyComm, id: t.Any, method: str, params: t.Any = None) -> dict[str, t.Any]:
    """Ask and return the one response this produced."""
    before = len(comm.responses())
    comm.ask(id, method, params)
    new = comm.responses()[before:]
    assert len(new) == 1, new
    assert new[0]["id"] == id
    check_response(method, new[0])
    return new[0]


def error_code(response: dict[str, t.Any]) -> int:
    assert "error" in response, response
    assert len(response["error"]["message"]) < 300, response  # nothing long is echoed back
    return response["error"]["code"]


# -- opening -----------------------------------------------------------------------------


def test_register_and_hello(channel: Channel, service: FakeService) -> None:
    manager = CommManager()
    channel.register(manager)
    assert manager.targets == {"greed": channel.on_open}
    comm = DummyComm("a")
    manager.targets["greed"](comm, {})
    (hello,) = comm.sent
    assert hello["method"] == "hello" and "id" not in hello
    check_event("hello", hello["params"])
    assert hello["params"]["version"] == greed_kernel.__version__
    assert hello["params"]["stats"] == STATS
    assert hello["params"]["config"]["evict"] == "page"
    assert hello["params"]["previousKernel"] == PREVIOUS
    assert list(channel.comms.values()) == [comm]


def test_methods_are_the_schemas(channel: Channel) -> None:
    assert list(channel.methods) == protocol.methods() == list(SCHEMA["methods"])


# -- requests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("stats", None),
        ("stats", {}),
        ("cleanup", None),
        ("optimize", {}),
        ("preserve", {"names": ["x", "y"]}),
        ("unpreserve", {"names": ["x"]}),
        ("vars", None),
        ("restore", {"names": ["w"]}),
        ("restore", {"all": True}),
        ("history", None),
        ("memory", None),
    ],
)
def test_each_method_answers_only_the_comm_that_asked(
    channel: Channel, service: FakeService, method: str, params: t.Any
) -> None:
    asking, other = open_comm(channel, "a"), open_comm(channel, "b")
    seen_by_other = len(other.sent)
    response = reply(asking, "req-1", method, params)
    assert "result" in response, response
    assert other.responses() == []
    # the other comm gets the events (a cleanup's), never the response
    assert all(protocol.is_notification(m) for m in other.sent[seen_by_other:])


def test_results(channel: Channel, service: FakeService) -> None:
    comm = open_comm(channel)
    assert reply(comm, 1, "stats")["result"] == STATS
    assert reply(comm, 2, "preserve", {"names": ["x"]})["result"] == {"names": ["x"], "omitted": 0}
    assert ("preserve", ["x"]) in service.calls
    assert reply(comm, 3, "unpreserve", {"names": ["x"]})["result"]["names"] == ["x"]
    assert reply(comm, 4, "vars")["result"] == {"variables": service.rows, "omitted": 0}
    assert reply(comm, 5, "restore", {"names": ["w"]})["result"] == {
        "names": ["w"],
        "omitted": 0,
        "bytes": 4096,
    }
    assert reply(comm, 6, "restore", {"all": True})["result"]["bytes"] == 4106
    assert reply(comm, 7, "history")["result"] == {"reports": [CLEANUP, OPTIMIZE]}
    assert reply(comm, 8, "memory")["result"] == MEMORY


def test_cleanup_broadcasts_its_event_and_answers_with_the_report(channel: Channel) -> None:
    asking, other = open_comm(channel, "a"), open_comm(channel, "b")
    response = reply(asking, "c", "cleanup")
    assert response["result"]["trigger"] == "manual"
    for comm in (asking, other):
        event = comm.sent[-2 if comm is asking else -1]
        assert event["method"] == "execution:cleanup"
        check_event("execution:cleanup", event["params"])
        assert event["params"]["report"] == response["result"]
    assert asking.sent[-1] is response  # the event first, then the answer
    assert reply(asking, "o", "optimize")["result"]["kind"] == "optimize"


def test_many_names_are_capped_in_the_answer(channel: Channel) -> None:
    comm = open_comm(channel)
    names = [f"n{i:04d}" for i in range(MAX_REQUEST_NAMES)]
    result = reply(comm, 1, "preserve", {"names": names})["result"]
    assert len(result["names"]) == 200 and result["omitted"] == MAX_REQUEST_NAMES - 200


def test_vars_are_capped(channel: Channel, service: FakeService) -> None:
    service.rows = [dict(ROW, name=f"v{i}") for i in range(250)]
    result = reply(open_comm(channel), 1, "vars")["result"]
    assert len(result["variables"]) == 200 and result["omitted"] == 50


@pytest.mark.parametrize("id", ["a", 0, -5, 2**53, None])
def test_ids_are_echoed(channel: Channel, id: t.Any) -> None:
    assert reply(open_comm(channel), id, "stats")["id"] == id


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (None, protocol.INVALID_REQUEST),
        ("stats", protocol.INVALID_REQUEST),
        ([protocol.request(1, "stats")], protocol.INVALID_REQUEST),  # a batch
        ({"id": 1, "method": "stats"}, protocol.INVALID_REQUEST),  # no jsonrpc
        ({"jsonrpc": "1.0", "id": 1, "method": "stats"}, protocol.INVALID_REQUEST),
        ({"jsonrpc": "2.0", "id": 1, "method": 5}, protocol.INVALID_REQUEST),
        ({"jsonrpc": "2.0", "id": 1.5, "method": "stats"}, protocol.INVALID_REQUEST),
        ({"jsonrpc": "2.0", "id": True, "method": "stats"}, protocol.INVALID_REQUEST),
        ({"jsonrpc": "2.0", "id": [1], "method": "stats"}, protocol.INVALID_REQUEST),
        ({"jsonrpc": "2.0", "id": 1, "method": "stats", "extra": 1}, protocol.INVALID_REQUEST),
        ({"request": "stats"}, protocol.INVALID_REQUEST),  # the old protocol
        (protocol.request(1, "nope"), protocol.METHOD_NOT_FOUND),
        (protocol.request(1, "x" * 100_000), protocol.METHOD_NOT_FOUND),
        (protocol.request(1, "_stats"), protocol.METHOD_NOT_FOUND),
        (protocol.request(1, "__class__"), protocol.METHOD_NOT_FOUND),
        (protocol.request(1, "hello"), protocol.METHOD_NOT_FOUND),
        ({"jsonrpc": "2.0", "id": 1, "method": "stats", "params": [1]}, protocol.INVALID_PARAMS),
        ({"jsonrpc": "2.0", "id": 1, "method": "stats", "params": None}, protocol.INVALID_PARAMS),
        (protocol.request(1, "stats", {"x": 1}), protocol.INVALID_PARAMS),
        (protocol.request(1, "preserve"), protocol.INVALID_PARAMS),
        (protocol.request(1, "preserve", {"names": []}), protocol.INVALID_PARAMS),
        (protocol.request(1, "preserve", {"names": "x"}), protocol.INVALID_PARAMS),
        (protocol.request(1, "preserve", {"names": ["x"], "y": 1}), protocol.INVALID_PARAMS),
        (protocol.request(1, "preserve", {"names": ["not a name"]}), protocol.INVALID_PARAMS),
        (protocol.request(1, "preserve", {"names": [3]}), protocol.INVALID_PARAMS),
        (protocol.request(1, "preserve", {"names": ["a" * 257]}), protocol.INVALID_PARAMS),
        (protocol.request(1, "preserve", {"names": ["x"] * 1001}), protocol.INVALID_PARAMS),
        (protocol.request(1, "restore", {"names": ["nope"]}), protocol.INVALID_PARAMS),
        (protocol.request(1, "restore", {"all": False}), protocol.INVALID_PARAMS),
        (protocol.request(1, "restore", {"all": True, "names": ["w"]}), protocol.INVALID_PARAMS),
        (protocol.request(1, "restore", {}), protocol.INVALID_PARAMS),
    ],
)
def test_malformed_messages_get_errors(channel: Channel, data: t.Any, code: int) -> None:
    comm = open_comm(channel)
    comm.deliver(data)
    (response,) = comm.responses()
    assert error_code(response) == code, response
    readable_id = isinstance(data, dict) and protocol.is_id(data.get("id"))
    assert response["id"] == (data.get("id") if readable_id else None)
    assert [m["method"] for m in comm.events()] == ["hello"]


def test_failures_are_errors(channel: Channel, service: FakeService) -> None:
    comm = open_comm(channel)
    service.failing = {"cleanup", "optimize"}
    assert error_code(reply(comm, 1, "cleanup")) == protocol.OPERATION_FAILED
    assert error_code(reply(comm, 2, "optimize")) == protocol.OPERATION_FAILED
    service.raising = {"vars"}
    response = reply(comm, 3, "vars")
    assert error_code(response) == protocol.INTERNAL_ERROR
    assert response["error"]["message"] == "request failed: RuntimeError"
    assert "result" in reply(comm, 4, "stats")  # still answering


def test_notifications_run_but_are_not_answered(channel: Channel, service: FakeService) -> None:
    comm = open_comm(channel)
    comm.deliver({"jsonrpc": "2.0", "method": "preserve", "params": {"names": ["q"]}})
    comm.deliver({"jsonrpc": "2.0", "method": "nope"})
    comm.deliver({"jsonrpc": "2.0", "method": "preserve", "params": {"names": []}})
    assert ("preserve", ["q"]) in service.calls
    assert comm.responses() == []
    comm.deliver({"jsonrpc": "2.0", "method": 3})  # not a request at all: answered, id null
    (response,) = comm.responses()
    assert response["id"] is None and error_code(response) == protocol.INVALID_REQUEST


# -- cells and threads -------------------------------------------------------------------


def test_opens_and_requests_wait_for_the_running_cell(
    channel: Channel, service: FakeService
) -> None:
    service.cell_running = True
    comm = open_comm(channel)
    comm.ask(1, "stats")
    comm.ask(2, "cleanup")
    comm.deliver("garbage")
    assert comm.sent == [] and service.calls == []
    service.end_cell()
    assert [m.get("method", m.get("id")) for m in comm.sent] == [
        "hello",
        1,
        "execution:cleanup",
        2,
        None,
    ]


def test_messages_from_another_thread_hop_to_the_main_thread(service: FakeService) -> None:
    queued: list[Callable[[], None]] = []
    channel = Channel(service=service, on_main_thread=queued.append)
    comm = DummyComm("sub")

    def subshell() -> None:  # a kernel subshell delivers the comm's messages here
        channel.on_open(comm, {})
        comm.ask(1, "cleanup")

    thread = threading.Thread(target=subshell)
    thread.start()
    thread.join()
    assert comm.sent == [] and service.calls == [] and len(queued) == 2
    for fn in queued:  # the main thread's IOLoop runs them
        fn()
    assert [m.get("method", m.get("id")) for m in comm.sent] == ["hello", 1]
    assert service.threads == {threading.main_thread()}


def test_on_the_main_thread_no_hop(service: FakeService) -> None:
    queued: list[Callable[[], None]] = []
    channel = Channel(service=service, on_main_thread=queued.append)
    comm = open_comm(channel)
    assert queued == [] and comm.sent[0]["method"] == "hello"


# -- closing -----------------------------------------------------------------------------


def test_a_closed_comm_gets_nothing_more(channel: Channel, service: FakeService) -> None:
    first, second = open_comm(channel, "a"), open_comm(channel, "b")
    service.cell_running = True
    first.ask(1, "stats")
    first.close()
    service.end_cell()
    assert first.responses() == []  # the answer was due after the close
    channel.notify("memory:pressure", {"stats": STATS})
    assert [m["method"] for m in first.events()] == ["hello"]
    assert [m["method"] for m in second.events()] == ["hello", "memory:pressure"]
    assert list(channel.comms.values()) == [second]


def test_closed_before_its_hello(channel: Channel, service: FakeService) -> None:
    service.cell_running = True
    comm = open_comm(channel)
    comm.close()
    service.end_cell()
    assert comm.sent == [] and channel.comms == {}


def test_closed_by_the_kernel_side_or_failing(channel: Channel) -> None:
    gone, failing, fine = (open_comm(channel, x) for x in "abc")
    gone._closed = True
    failing.fail = True
    channel.notify("memory:pressure", {"stats": STATS})  # logged, never raised
    assert list(channel.comms.values()) == [failing, fine]
    assert fine.sent[-1]["method"] == "memory:pressure"


def test_events_are_json_clean(channel: Channel) -> None:
    comm = open_comm(channel)
    channel.notify("memory:pressure", {"stats": dict(STATS, memoryPressure=float("nan"))})
    assert comm.sent[-1]["params"]["stats"]["memoryPressure"] is None


# -- any message -------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=any_message)
def test_any_message_gets_the_answer_the_schema_says(data: t.Any) -> None:
    service = FakeService()
    channel = Channel(service=service)
    comm = open_comm(channel)
    comm.deliver(data)  # DummyComm.send checks every message against the schema
    responses = comm.responses()
    if expected_answer(data, service.paged_out) is None:
        assert responses == []  # a notification
    else:
        (response,) = responses
        check_answer(data, response, service.paged_out)
