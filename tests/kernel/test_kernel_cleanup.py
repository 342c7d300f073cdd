"""The cleanup and optimisation engine, end to end in real kernel processes.

One shared kernel (``recent_window=0``, so that a name touched a moment ago is
not kept for being recent, and ``evict=off``, so that stale values stay in the
namespace instead of being spilled) serves the tests that do not need their own
triggers; the idle, memory and periodic triggers each get a private kernel.
State is read with user expressions (``KernelHarness.eval``) or through the
``greed`` comm, never by parsing printed text where that can be avoided.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from greed_kernel.frontends.client import GreedClient

from kernel_harness import KernelHarness

pytestmark = pytest.mark.timeout(120)

#: Output-cache and input-history names IPython adds as cells run.
CACHE_NAME = re.compile(r"_+|_\d+|_i+\d*")

#: What a fresh IPython kernel puts in the user namespace (ipykernel 7 / IPython 9).
IPYTHON_NAMES = frozenset(
    {
        "In",
        "Out",
        "_",
        "__",
        "___",
        "_i",
        "_ii",
        "_iii",
        "_ih",
        "_oh",
        "_dh",
        "get_ipython",
        "exit",
        "quit",
        "open",
        "__builtin__",
        "__builtins__",
        "__doc__",
        "__loader__",
        "__name__",
        "__package__",
        "__spec__",
    }
)

CLEANUP_KEYS = {
    "kind",
    "trigger",
    "executionCount",
    "durationMs",
    "deleted",
    "outputsReleased",
    "errorReleased",
    "rssBefore",
    "rssAfter",
    "cudaBefore",
    "cudaAfter",
    "preserved",
}
OPTIMIZE_KEYS = {
    "kind",
    "trigger",
    "executionCount",
    "durationMs",
    "gradsCleared",
    "rssBefore",
    "rssAfter",
    "cudaBefore",
    "cudaAfter",
}

SERVICE = "get_ipython().kernel.greed.service"

#: An error cell: a function keeps a tensor in a local, leaves a weakref to it, raises.
RAISING_CELL = (
    "def boom():\n"
    "    big = torch.ones(1000)\n"
    "    global err_ref\n"
    "    err_ref = weakref.ref(big)\n"
    "    raise ValueError('boom')\n"
    "boom()"
)


# -- helpers ---------------------------------------------------------------------------


def ok(k: KernelHarness, code: str) -> Any:
    result = k.execute(code)
    assert result.status == "ok", result
    assert result.error is None, result
    return result


def kjson(k: KernelHarness, expr: str) -> Any:
    """The value of *expr* in the kernel, through JSON (allow_nan=False: must be clean)."""
    text = k.eval(f"__import__('json').dumps({expr}, allow_nan=False)")
    return json.loads(ast.literal_eval(text))


def user_names(k: KernelHarness) -> set[str]:
    """The user namespace's names, without IPython's output and input cache names."""
    names = kjson(k, "sorted(get_ipython().user_ns)")
    return {n for n in names if not CACHE_NAME.fullmatch(n)}


def count(k: KernelHarness, field: str) -> int:
    """A counter of the STATS snapshot (what `%greed stats` and the comm show)."""
    return int(kjson(k, f"{SERVICE}.stats()")[field])


def last_report(k: KernelHarness, kind: str) -> Any:
    """The last report of *kind* (what `%greed status` and the comm's history show)."""
    return next((r for r in reversed(kjson(k, f"{SERVICE}.history()")) if r["kind"] == kind), None)


def wait_for(client: GreedClient, match: Any, timeout: float = 30) -> dict[str, Any]:
    """Read the client's IOPub until an event satisfying *match* arrives."""
    return client.wait_for(match, timeout=timeout)


def reports(client: GreedClient, kind: str, trigger: str | None = None) -> list[dict[str, Any]]:
    return [
        e["report"]
        for e in client.events
        if e.get("event") == f"execution:{kind}"
        and (trigger is None or e["report"]["trigger"] == trigger)
    ]


def run(client: GreedClient, code: str) -> str:
    """Run a cell through the client; its stdout (the cell must succeed)."""
    outputs: list[dict[str, Any]] = []
    reply = client.execute(code, timeout=60, output_hook=outputs.append)
    assert reply["status"] == "ok", (reply, outputs)
    return "".join(
        m["content"]["text"]
        for m in outputs
        if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
    )


# -- the shared kernel -----------------------------------------------------------------


@pytest.fixture(scope="module")
def k(jupyter_sandbox: Any) -> Iterator[KernelHarness]:
    # gc_freeze (off by default) on: the error-frame tests below check that the opt-in
    # freeze never makes a released error uncollectable
    with KernelHarness(
        "--GreedKernel.recent_window=0", "--GreedKernel.evict=off", "--GreedKernel.gc_freeze=True"
    ) as harness:
        # the namespace before any cell ran, for test_no_names_of_our_own
        harness.initial_names = kjson(harness, "sorted(get_ipython().user_ns)")  # type: ignore[attr-defined]
        ok(harness, "import gc, json, sys, weakref\nimport torch\nfrom torch import nn")
        yield harness


def test_fresh_namespace_holds_only_ipython_names(k: KernelHarness) -> None:
    initial = set(k.initial_names)  # type: ignore[attr-defined]
    assert initial <= IPYTHON_NAMES, sorted(initial - IPYTHON_NAMES)
    assert {"In", "Out", "get_ipython", "__builtins__"} <= initial


def test_no_names_of_our_own_after_cells_cleanup_and_optimize(k: KernelHarness) -> None:
    before = user_names(k)
    hidden_before = set(kjson(k, "sorted(get_ipython().user_ns_hidden)"))
    defined = {f"v{i}" for i in range(10)}
    for i in range(10):
        ok(k, f"v{i} = {i}\nv{i}")
    ok(k, "%greed cleanup")
    ok(k, "%greed optimize")
    ok(k, "%greed stats")
    gained = user_names(k) - before
    assert gained == defined, sorted(gained - defined)
    everything = kjson(k, "sorted(get_ipython().user_ns)")
    ours = [n for n in everything if n.lower().lstrip("_").startswith("greed")]
    assert ours == []
    hidden_gained = set(kjson(k, "sorted(get_ipython().user_ns_hidden)")) - hidden_before
    assert not [n for n in hidden_gained if not CACHE_NAME.fullmatch(n)], hidden_gained
    ok(k, "del " + ", ".join(sorted(defined)))


def test_150_executions_run_a_cleanup(k: KernelHarness) -> None:
    """Greed.js's check: a cleanup every 100 executions (the default interval)."""
    assert k.eval("get_ipython().kernel.cleanup_interval") == "100"
    ok(k, "_temp_before_loop = torch.ones(100)\n_w_loop = weakref.ref(_temp_before_loop)")
    before = count(k, "cleanupCount")
    for i in range(150):
        result = k.execute(f"print({i})")
        assert result.stdout == f"{i}\n", result
    assert count(k, "cleanupCount") >= before + 1
    periodic = [
        r
        for r in kjson(k, f"{SERVICE}.history()")
        if r["kind"] == "cleanup" and r["trigger"] == "periodic"
    ]
    assert periodic, "no periodic cleanup in 150 executions"
    assert all(r["executionCount"] % 100 == 0 for r in periodic), periodic
    # the periodic cleanup deleted the temporary, and the object went with it
    assert k.eval("'_temp_before_loop' in get_ipython().user_ns") == "False"
    assert k.eval("_w_loop() is None") == "True"


def test_cleanup_deletes_temporaries_and_nothing_else(k: KernelHarness) -> None:
    ok(
        k,
        "model = nn.Linear(4, 2)\n"
        "keep_list = [1, 2, 3]\n"
        "big = torch.zeros(512, 1024)\n"
        "def helper():\n"
        "    return keep_list\n"
        "class Thing:\n"
        "    pass\n"
        "thing = Thing()\n"
        "_private = 5\n"
        "_temp_x = torch.ones(10)\n"
        "_out_y = [1, 2]\n"
        "_temp_alias_model = model\n"
        "_temp_alias_list = keep_list\n"
        "w_temp = weakref.ref(_temp_x)\n"
        "ids = (id(model), id(keep_list), id(big), id(thing))",
    )
    ok(k, "_out_y")  # a temporary that is also in the output cache
    ok(k, "keep_list")  # a kept object displayed, then aliased by a temporary
    temporaries = {"_temp_x", "_out_y", "_temp_alias_model", "_temp_alias_list"}
    before = user_names(k)
    assert temporaries <= before

    ok(k, "%greed cleanup")

    after = user_names(k)
    assert before - after == temporaries
    assert after - before == set()
    report = last_report(k, "cleanup")
    assert report["trigger"] == "manual"
    assert set(report["deleted"]) == temporaries
    # the kept objects are the same objects, unchanged
    assert k.eval("ids == (id(model), id(keep_list), id(big), id(thing))") == "True"
    assert k.eval("keep_list") == "[1, 2, 3]"
    assert k.eval("helper() is keep_list") == "True"
    assert k.eval("type(model).__name__, tuple(model.weight.shape)") == "('Linear', (2, 4))"
    assert k.eval("_private") == "5"
    # the temporary's object is really freed, not only unbound
    assert k.eval("w_temp() is None") == "True"
    # and no output-cache entry still holds a deleted temporary
    assert k.eval("any(v == [1, 2] for v in Out.values() if isinstance(v, list))") == "False"


def test_released_outputs_free_their_tensors(k: KernelHarness) -> None:
    shown = ok(k, "t = torch.ones(1000)\nw_out = weakref.ref(t)\nt")
    assert shown.data is not None and shown.data.startswith("tensor(")
    ok(k, "del t")
    for _ in range(4):  # more cells than output_cache_keep (3)
        ok(k, "pass")
    # the output cache (Out, _N, _) still holds it: alive
    assert k.eval("w_out() is not None") == "True"
    ok(k, "%greed cleanup")
    assert k.eval("w_out() is None") == "True"
    report = last_report(k, "cleanup")
    assert report["outputsReleased"] >= 1


def test_recent_outputs_are_kept(k: KernelHarness) -> None:
    ok(k, "t2 = torch.ones(10)\nw_recent = weakref.ref(t2)\nt2")
    ok(k, "del t2")
    ok(k, "%greed cleanup")  # the output is one of the last 3: kept
    assert k.eval("w_recent() is not None") == "True"


def test_error_frame_locals_are_freed(k: KernelHarness) -> None:
    result = k.execute(RAISING_CELL)
    assert result.status == "error" and result.error["ename"] == "ValueError", result
    # sys.last_traceback pins the frame, and its tensor
    assert k.eval("err_ref() is not None") == "True"
    ok(k, "%greed cleanup")
    assert k.eval("err_ref() is None") == "True"
    assert k.eval("hasattr(sys, 'last_traceback')") == "False"
    assert last_report(k, "cleanup")["errorReleased"] is True
    debug = k.execute("%debug")
    assert debug.status == "ok", debug
    assert debug.error is None, debug
    assert "No traceback" in debug.stderr, debug


def test_the_stored_error_goes_after_the_next_cell(k: KernelHarness) -> None:
    """Release as you go: no periodic cleanup needed. The cell after the next sees no
    stored error (the release runs after the next cell's reply, or before the cell
    after it, whichever comes first)."""
    assert k.execute(RAISING_CELL).status == "error"
    assert k.eval("hasattr(sys, 'last_traceback')") == "True"
    ok(k, "x_after_the_error = 1")
    seen = k.execute("print(hasattr(sys, 'last_traceback'))")
    assert seen.stdout.strip() == "False", seen


def test_error_frame_freed_when_an_optimisation_ran_in_between(k: KernelHarness) -> None:
    """An optimisation (manual, periodic or idle) collects and, with gc_freeze, freezes
    the heap. The exception and its frames form a reference cycle: frozen while
    sys.last_traceback still pinned them, no later cleanup's collection would free them."""
    assert k.execute(RAISING_CELL).status == "error"
    # a cell that mentions tb keeps the stored error (it is released after the next
    # cell that does not, as soon as that cell's reply is sent)
    ok(k, "%greed optimize\n# then %tb")
    assert k.eval("err_ref() is not None") == "True"
    ok(k, "%greed cleanup")
    assert k.eval("hasattr(sys, 'last_traceback')") == "False"
    assert k.eval("err_ref() is None") == "True", (
        "the error's frame survived %greed cleanup: frozen by the optimisation's gc.freeze()"
    )


def test_error_frame_freed_when_the_error_cell_imported_a_module(k: KernelHarness) -> None:
    """A cell that imports makes the engine freeze the heap (the new modules are
    long-lived); a failing cell that imports must not freeze its error's frames."""
    cell = (
        "import importlib\n"
        "_mod = next(m for m in ('colorsys', 'sched', 'wave', 'tabnanny', 'netrc', 'mailbox')"
        " if m not in sys.modules)\n"
        "importlib.import_module(_mod)\n" + RAISING_CELL
    )
    assert k.execute(cell).status == "error"
    assert k.eval("_mod in sys.modules") == "True"
    assert k.eval("err_ref() is not None") == "True"
    ok(k, "%greed cleanup")
    assert k.eval("err_ref() is None") == "True", (
        "the failing cell's frame survived %greed cleanup (frozen by gc.freeze)"
    )


def test_full_cleanup_frees_a_frozen_error_frame(k: KernelHarness) -> None:
    """``%greed cleanup --full`` collects the whole heap, frozen part included."""
    assert k.execute(RAISING_CELL).status == "error"
    ok(k, "%greed optimize")
    assert k.eval("err_ref() is not None") == "True"
    ok(k, "%greed cleanup --full")
    assert k.eval("err_ref() is None") == "True"


def test_optimize_clears_frozen_parameters_grads(k: KernelHarness) -> None:
    ok(
        k,
        "model = nn.Linear(4, 2)\n"
        "model(torch.randn(3, 4)).sum().backward()\n"
        "model.weight.requires_grad_(False)",
    )
    assert k.eval("model.weight.grad is not None, model.bias.grad is not None") == "(True, True)"
    result = ok(k, "%greed optimize")
    assert "Greed: optimisation cleared" in result.stdout
    assert k.eval("model.weight.grad is None") == "True"
    assert k.eval("model.bias.grad is not None") == "True"
    report = last_report(k, "optimize")
    assert report["trigger"] == "manual"
    assert report["gradsCleared"] >= 1


def test_reports_have_every_key_and_are_json_clean(k: KernelHarness) -> None:
    ok(k, "model = nn.Linear(2, 2)\n_temp_report = 1")
    ok(k, "%greed cleanup")
    ok(k, "%greed optimize")
    cleanup = last_report(k, "cleanup")
    optimize = last_report(k, "optimize")
    assert set(cleanup) >= CLEANUP_KEYS, sorted(CLEANUP_KEYS - set(cleanup))
    assert set(optimize) >= OPTIMIZE_KEYS, sorted(OPTIMIZE_KEYS - set(optimize))
    for report, kind in ((cleanup, "cleanup"), (optimize, "optimize")):
        assert report["kind"] == kind
        assert report["trigger"] == "manual"
        assert isinstance(report["executionCount"], int) and report["executionCount"] > 0
        assert isinstance(report["durationMs"], (int, float)) and report["durationMs"] >= 0
        assert isinstance(report["rssBefore"], int) and report["rssBefore"] > 0
        assert isinstance(report["rssAfter"], int) and report["rssAfter"] > 0
        assert isinstance(report["cudaBefore"], list)
        assert isinstance(report["cudaAfter"], list)
        json.dumps(report, allow_nan=False)
    assert "_temp_report" in cleanup["deleted"]
    assert isinstance(cleanup["outputsReleased"], int)
    assert isinstance(cleanup["errorReleased"], bool)
    assert isinstance(cleanup["preserved"], list)
    assert all(isinstance(n, str) for n in cleanup["preserved"])
    # the names kept by the preserve list show as preserved
    assert {"torch", "nn", "model"} <= set(cleanup["preserved"])


HOSTILE_CELL = """
class Hostile:
    def __getattr__(self, name): raise RuntimeError("hostile getattr")
    def __del__(self): raise RuntimeError("hostile del")
    def __eq__(self, other): raise RuntimeError("hostile eq")
    def __hash__(self): raise RuntimeError("hostile hash")
    def __sizeof__(self): raise RuntimeError("hostile sizeof")
    def __len__(self): raise RuntimeError("hostile len")
    def __bool__(self): raise RuntimeError("hostile bool")
    def __iter__(self): raise RuntimeError("hostile iter")
    def __repr__(self): raise RuntimeError("hostile repr")

class Liar:
    @property
    def __class__(self): return torch.Tensor
    def __getattr__(self, name): raise RuntimeError("liar getattr")

class Opaque:
    def __getattribute__(self, name): raise RuntimeError("opaque getattribute")

class HostileList(list):
    def __iter__(self): raise RuntimeError("hostile list iter")
    def __len__(self): raise RuntimeError("hostile list len")

class HostileMeta(type):
    def __hash__(cls): raise RuntimeError("meta hash")
    def __eq__(cls, other): raise RuntimeError("meta eq")

class Weird(metaclass=HostileMeta):
    pass

hostile = Hostile()
liar = Liar()
opaque = Opaque()
hlist = HostileList([torch.ones(3)])
weird = Weird()
hostiles = [Hostile(), liar, {"h": Hostile()}]
_temp_hostile = Hostile()
"""
HOSTILE_NAMES = ("hostile", "liar", "opaque", "hlist", "weird", "hostiles")


def test_hostile_objects_do_not_break_anything(k: KernelHarness) -> None:
    ok(k, HOSTILE_CELL)
    assert k.eval("isinstance(liar, torch.Tensor)") == "True"  # it really lies
    outputs = {}
    for cell in (
        "%greed cleanup",
        "%greed optimize",
        "%greed vars",
        "%greed stats",
        "%greed why hostile",
        "%greed why liar",
        "%greed status",
    ):
        result = k.execute(cell)
        assert result.status == "ok", (cell, result)
        assert result.error is None, (cell, result)
        # the only traceback allowed is the one Python prints for the temporary's own
        # raising __del__ ("Exception ignored in ..."): nothing from our machinery
        text = result.stdout + result.stderr
        assert "greed_kernel" not in text, (cell, text)
        stripped = re.sub(
            r"Exception ignored in: <function Hostile.__del__.*?RuntimeError: hostile del\n",
            "",
            result.stderr,
            flags=re.S,
        )
        assert "Traceback" not in stripped, (cell, result.stderr)
        assert "failed" not in stripped, (cell, result.stderr)
        outputs[cell] = result
    assert "Greed: cleanup deleted" in outputs["%greed cleanup"].stdout
    assert "Greed: optimisation cleared" in outputs["%greed optimize"].stdout
    assert outputs["%greed why hostile"].stdout.startswith("hostile: ")
    assert outputs["%greed why liar"].stdout.startswith("liar: ")
    vars_table = "".join(
        m["content"]["data"]["text/plain"]
        for m in outputs["%greed vars"].outputs
        if m["msg_type"] == "display_data"
    )
    for name in HOSTILE_NAMES:
        assert re.search(rf"^{name}\s", vars_table, re.M), (name, vars_table)
    present = kjson(
        k, f"[n for n in {(*HOSTILE_NAMES, '_temp_hostile')!r} if n in get_ipython().user_ns]"
    )
    assert present == list(HOSTILE_NAMES)
    assert k.eval("1 + 1") == "2"
    ok(k, "del " + ", ".join(HOSTILE_NAMES))


def test_cuda_optimize_empties_the_cache(k: KernelHarness) -> None:
    if k.eval("torch.cuda.is_available()") != "True":
        pytest.skip("no CUDA device (torch.cuda.is_available() is False)")
    ok(k, "x_cuda = torch.empty(64 * 1024 * 1024, device='cuda')\ndel x_cuda")
    reserved = int(k.eval("torch.cuda.memory_reserved(0)"))
    assert reserved >= 256 * 1024 * 1024
    ok(k, "%greed optimize")
    report = last_report(k, "optimize")
    before = {d["device"]: d["reserved"] for d in report["cudaBefore"]}
    after = {d["device"]: d["reserved"] for d in report["cudaAfter"]}
    assert before[0] >= 256 * 1024 * 1024
    assert after[0] < before[0]
    assert 0 in report["cudaEmptied"]
    assert int(k.eval("torch.cuda.memory_reserved(0)")) < reserved


# -- triggers, each in its own kernel ---------------------------------------------------


def test_work_after_the_reply_and_the_idle_timer_run_in_a_real_kernel(new_kernel: Any) -> None:
    """The kernel's event loop runs what cell_done schedules: the periodic cleanup due
    at cell 2 arrives after that cell's reply, and the idle timer fires once. (The
    triggers themselves are tested in-process, tests/inprocess/test_engine_inprocess.py, with a
    clock the test drives.)"""
    with new_kernel(
        "--GreedKernel.cleanup_interval=2",
        "--GreedKernel.idle_timeout=0.5",
        "--GreedKernel.memory_threshold=0",
    ) as kh:
        client = GreedClient(kh.kc)
        run(client, "x = 1")
        run(client, "y = 2")
        periodic = wait_for(
            client,
            lambda e: (
                e.get("event") == "execution:cleanup" and e["report"]["trigger"] == "periodic"
            ),
        )
        assert periodic["report"]["executionCount"] == 2
        idle = wait_for(
            client,
            lambda e: e.get("event") == "execution:cleanup" and e["report"]["trigger"] == "idle",
        )
        assert idle["report"]["executionCount"] == 2
        wait_for(
            client,
            lambda e: e.get("event") == "execution:optimize" and e["report"]["trigger"] == "idle",
        )
        client.close()
