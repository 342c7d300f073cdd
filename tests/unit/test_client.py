"""GreedClient and AsyncGreedClient on a scripted kernel client (no kernel): replies are
matched by id, whatever else comes on IOPub and in whatever order."""

from __future__ import annotations

import asyncio
import queue
import typing as t
import uuid
from collections.abc import Callable

import pytest

from greed_kernel.frontends import protocol
from greed_kernel.frontends.client import AsyncGreedClient, GreedClient, GreedError

pytestmark = pytest.mark.timeout(30)

STATS = {"executionCount": 1}
REPORT = {"kind": "cleanup", "trigger": "manual"}


def iopub(msg_type: str, content: dict[str, t.Any], parent: str = "") -> dict[str, t.Any]:
    return {
        "header": {"msg_type": msg_type, "msg_id": uuid.uuid4().hex},
        "msg_type": msg_type,
        "parent_header": {"msg_id": parent} if parent else {},
        "content": content,
    }


class Session:
    def msg(self, msg_type: str, content: dict[str, t.Any]) -> dict[str, t.Any]:
        return {"header": {"msg_type": msg_type, "msg_id": uuid.uuid4().hex}, "content": content}


class ScriptedKernel:
    """A blocking kernel client whose kernel answers through ``script(sent message)``:
    each sent message may queue IOPub messages (and shell replies) for the client."""

    def __init__(self, script: Callable[[ScriptedKernel, dict[str, t.Any]], None]) -> None:
        self.session = Session()
        self.shell_channel = self
        self.script = script
        self.iopub: t.Any = queue.Queue()
        self.shell: queue.Queue[dict[str, t.Any]] = queue.Queue()
        self.sent: list[dict[str, t.Any]] = []
        self.comm_id = ""

    # -- what the client calls ----------------------------------------------------------
    def send(self, msg: dict[str, t.Any]) -> None:
        self.sent.append(msg)
        if msg["header"]["msg_type"] == "comm_open":
            self.comm_id = msg["content"]["comm_id"]
            self.to_comm(protocol.notification("hello", {"version": "0", "stats": STATS}))
        else:
            self.script(self, msg)

    def get_iopub_msg(self, timeout: float | None = None) -> dict[str, t.Any]:
        return self.iopub.get(timeout=timeout)

    def get_shell_msg(self, timeout: float | None = None) -> dict[str, t.Any]:
        return self.shell.get(timeout=timeout)

    def execute(self, code: str, **kwargs: t.Any) -> str:
        msg = self.session.msg("execute_request", {"code": code, **kwargs})
        self.send(msg)
        return str(msg["header"]["msg_id"])

    # -- the kernel's side ---------------------------------------------------------------
    def put(self, msg: dict[str, t.Any]) -> None:
        self.iopub.put_nowait(msg)

    def to_comm(self, data: t.Any, comm_id: str | None = None, parent: str = "") -> None:
        content = {"comm_id": comm_id or self.comm_id, "data": data}
        self.put(iopub("comm_msg", content, parent))

    def requests(self) -> list[dict[str, t.Any]]:
        return [m["content"]["data"] for m in self.sent if m["header"]["msg_type"] == "comm_msg"]


class AsyncScriptedKernel(ScriptedKernel):
    """The same, as an asyncio kernel client: reading IOPub awaits."""

    def __init__(self, script: Callable[[ScriptedKernel, dict[str, t.Any]], None]) -> None:
        super().__init__(script)
        self.iopub = asyncio.Queue()

    async def get_iopub_msg(self, timeout: float | None = None) -> dict[str, t.Any]:  # type: ignore[override]
        try:
            return t.cast(dict[str, t.Any], await asyncio.wait_for(self.iopub.get(), timeout))
        except asyncio.TimeoutError:
            raise queue.Empty from None


def noise(kernel: ScriptedKernel) -> None:
    """What may come before an answer: events, another comm's answer with a guessable
    id, an old-protocol message, garbage."""
    kernel.to_comm(protocol.notification("execution:cleanup", {"report": REPORT}))
    kernel.to_comm(protocol.result(f"{kernel.comm_id[:8]}-1", "not yours"), comm_id="other")
    kernel.to_comm({"event": "stats", "stats": STATS})
    kernel.to_comm(protocol.result("someone-else", "stray"))
    kernel.put(iopub("status", {"execution_state": "idle"}))


def answer_each(kernel: ScriptedKernel, msg: dict[str, t.Any]) -> None:
    data = msg["content"].get("data")
    if msg["header"]["msg_type"] != "comm_msg" or not isinstance(data, dict):
        return
    noise(kernel)
    results = {"stats": STATS, "cleanup": REPORT, "vars": {"variables": [], "omitted": 0}}
    if data["method"] in results:
        kernel.to_comm(protocol.result(data["id"], results[data["method"]]))
    else:
        kernel.to_comm(protocol.error(data["id"], protocol.METHOD_NOT_FOUND, "unknown method"))


def test_a_request_takes_only_its_own_response() -> None:
    kernel = ScriptedKernel(answer_each)
    greed = GreedClient(kernel)
    assert greed.hello == {"event": "hello", "version": "0", "stats": STATS}
    assert greed.stats() == STATS
    assert greed.cleanup() == REPORT
    assert greed.vars() == []
    with pytest.raises(GreedError) as raised:
        greed.request("nope")
    assert raised.value.code == protocol.METHOD_NOT_FOUND
    assert str(raised.value) == "unknown method"
    ids = [r["id"] for r in kernel.requests()]
    assert len(set(ids)) == len(ids) == 4
    assert all(r["jsonrpc"] == "2.0" for r in kernel.requests())
    # the events were dispatched, the strays kept apart; the other comm's message ignored
    assert [e["event"] for e in greed.events] == ["hello"] + ["execution:cleanup"] * 4
    assert greed.unmatched.count({"event": "stats", "stats": STATS}) == 4
    assert protocol.result("someone-else", "stray") in greed.unmatched


def test_answers_out_of_order() -> None:
    """Requests awaited together: each gets its answer, answered in reverse order."""
    held: list[dict[str, t.Any]] = []

    def hold_then_answer_backwards(kernel: ScriptedKernel, msg: dict[str, t.Any]) -> None:
        held.append(msg["content"]["data"])
        if len(held) == 3:
            for data in reversed(held):
                noise(kernel)
                kernel.to_comm(protocol.result(data["id"], {"method": data["method"]}))

    async def session() -> list[t.Any]:
        greed = await AsyncGreedClient.open(AsyncScriptedKernel(hold_then_answer_backwards))
        return list(
            await asyncio.gather(
                greed.request("stats"), greed.request("cleanup"), greed.request("vars")
            )
        )

    assert asyncio.run(session()) == [{"method": m} for m in ("stats", "cleanup", "vars")]


def test_no_answer_times_out_and_a_late_one_is_unmatched() -> None:
    def never(kernel: ScriptedKernel, msg: dict[str, t.Any]) -> None:
        noise(kernel)

    kernel = ScriptedKernel(never)
    greed = GreedClient(kernel, timeout=0.2)
    with pytest.raises(TimeoutError):
        greed.stats()
    late = protocol.result(kernel.requests()[0]["id"], STATS)
    kernel.to_comm(late)
    greed.poll()
    assert late in greed.unmatched


def test_call_sends_anything_and_waits_for_its_id() -> None:
    def malformed(kernel: ScriptedKernel, msg: dict[str, t.Any]) -> None:
        data = msg["content"]["data"]
        rid = data.get("id") if isinstance(data, dict) else None
        kernel.to_comm(protocol.error(rid if protocol.is_id(rid) else None, -32600, "bad"))

    greed = GreedClient(ScriptedKernel(malformed))
    assert greed.call([1, 2])["id"] is None
    assert greed.call({"id": {"x": 1}})["id"] is None
    assert greed.call({"id": 7})["error"]["code"] == -32600
    assert greed.unmatched == []


def test_execute_dispatches_events_of_any_parent_and_hooks_the_cells_output() -> None:
    def run_cell(kernel: ScriptedKernel, msg: dict[str, t.Any]) -> None:
        if msg["header"]["msg_type"] != "execute_request":
            return
        cell = msg["header"]["msg_id"]
        kernel.put(iopub("status", {"execution_state": "busy"}, cell))
        kernel.put(iopub("stream", {"name": "stdout", "text": "hi"}, cell))
        kernel.put(iopub("stream", {"name": "stdout", "text": "not mine"}, "other"))
        kernel.to_comm(protocol.notification("memory:pressure", {"stats": STATS}), parent="x")
        kernel.put(iopub("status", {"execution_state": "idle"}, cell))
        kernel.shell.put({"parent_header": {"msg_id": "other"}, "content": {}})
        kernel.shell.put({"parent_header": {"msg_id": cell}, "content": {"status": "ok"}})
        # after the cell's idle: read by the next request or poll
        kernel.to_comm(protocol.notification("execution:cleanup", {"report": REPORT}), parent=cell)

    greed = GreedClient(ScriptedKernel(run_cell))
    outputs: list[dict[str, t.Any]] = []
    cleanups: list[dict[str, t.Any]] = []
    greed.on("execution:cleanup", cleanups.append)
    seen: list[str] = []
    greed.on("*", lambda e: seen.append(e["event"]))
    assert greed.execute("print('hi')", output_hook=outputs.append) == {"status": "ok"}
    assert [m["msg_type"] for m in outputs] == ["status", "stream", "status"]
    assert seen == ["memory:pressure"]
    assert greed.poll() == 1
    assert cleanups == [{"event": "execution:cleanup", "report": REPORT}]
    assert greed.wait_for(lambda e: e["event"] == "execution:cleanup")["report"] == REPORT
    sent = greed.kc.sent[-1]
    assert sent["content"]["allow_stdin"] is False


def test_close() -> None:
    kernel = ScriptedKernel(answer_each)
    with GreedClient(kernel) as greed:
        pass
    assert greed.closed
    assert kernel.sent[-1]["header"]["msg_type"] == "comm_close"
    greed.close()  # once
    assert [m["header"]["msg_type"] for m in kernel.sent].count("comm_close") == 1


def test_restore_preserve_and_history_params() -> None:
    def echo(kernel: ScriptedKernel, msg: dict[str, t.Any]) -> None:
        data = msg["content"]["data"]
        params = data.get("params", {})
        value = {
            "restore": {"names": params.get("names", []), "omitted": 0, "bytes": 3},
            "preserve": {"names": params.get("names"), "omitted": 0},
            "unpreserve": {"names": params.get("names"), "omitted": 0},
            "history": {"reports": [REPORT]},
        }[data["method"]]
        kernel.to_comm(protocol.result(data["id"], value))

    kernel = ScriptedKernel(echo)
    greed = GreedClient(kernel)
    assert greed.preserve("a", "b") == ["a", "b"]
    assert greed.unpreserve("a") == ["a"]
    assert greed.restore("w")["names"] == ["w"]
    assert greed.restore()["bytes"] == 3
    assert greed.history() == [REPORT]
    assert [r.get("params") for r in kernel.requests()] == [
        {"names": ["a", "b"]},
        {"names": ["a"]},
        {"names": ["w"]},
        {"all": True},
        None,
    ]


def test_the_checkpoint_methods_by_name() -> None:
    summary = {"id": "3", "time": 1.0, "cell": 7, "bytes": 10, "names": ["w"]}

    def answer(kernel: ScriptedKernel, msg: dict[str, t.Any]) -> None:
        data = msg["content"]["data"]
        value = {
            "checkpoint": summary,
            "checkpoints": {"checkpoints": [summary]},
            "resume": {"checkpoint": summary, "bound": ["w"]},
            "forget": {"bytes": 10},
        }[data["method"]]
        kernel.to_comm(protocol.result(data["id"], value))

    kernel = ScriptedKernel(answer)
    greed = GreedClient(kernel)
    assert greed.checkpoint() == summary
    assert greed.checkpoints() == [summary]
    assert greed.resume()["bound"] == ["w"]
    assert greed.resume("3")["checkpoint"] == summary
    assert greed.forget() == 10
    sent = [(r["method"], r.get("params")) for r in kernel.requests()]
    assert sent == [
        ("checkpoint", None),
        ("checkpoints", None),
        ("resume", {}),
        ("resume", {"id": "3"}),
        ("forget", None),
    ]
