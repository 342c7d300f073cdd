"""``%greed`` and ``%tb`` on a real in-process InteractiveShell, against a fake service.

The magics see the engine only through its ``Service``; the fake here has exactly
its methods, records the calls and returns canned answers. Display output is
captured with IPython's ``capture_output``.
"""

from __future__ import annotations

import sys
import typing as t
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config

import greed_kernel
from greed_kernel.engine.service import Service
from greed_kernel.frontends.magics import GreedMagics

MiB = 1 << 20
SERVICE_METHODS = {
    "stats", "vars", "why", "status", "history", "cleanup", "optimize",
    "preserve", "unpreserve", "paged", "restore", "shown_traceback", "settings",
    "memory", "previous_kernel", "checkpoint", "checkpoints", "resume", "forget",
    "resumable",
}  # fmt: skip
SUBCOMMANDS = (
    "vars", "why NAME", "preserve NAME...", "unpreserve NAME...", "cleanup [--full]",
    "optimize", "paged", "restore NAME... | --all", "checkpoint", "checkpoints",
    "resume [--replay] [ID]", "forget", "stats", "status", "help",
)  # fmt: skip

CLEANUP = {
    "deleted": ["a", "b"], "evicted": ["c"], "paged": ["frames"], "pagedBytes": 32 * MiB,
    "outputsReleased": 2, "errorReleased": True, "rssBefore": 300 * MiB,
    "rssAfter": 200 * MiB, "durationMs": 12.34,
}  # fmt: skip
CHECKPOINT = {
    "id": "3", "time": 1.8e9, "cell": 57, "bytes": 12 * MiB, "names": 4,
    "unstorable": ["gen"], "leftOut": [],
}  # fmt: skip
VARIABLE = {
    "name": "model", "type": "Module", "size": 3 * MiB, "device": "cuda:0",
    "lastTouchedAgo": 4.0, "lastTouchedCell": 7, "decision": "keep", "rule": "recent",
    "reason": "used in the last 3 cells", "pagedBytes": 0,
}  # fmt: skip


class FakeService:
    """The service's methods only: a magic reaching for anything else fails."""

    def __init__(self) -> None:
        self.calls: list[tuple[t.Any, ...]] = []
        self.rows = [VARIABLE, {**VARIABLE, "name": "n", "type": "int", "size": 28,
                                "device": None, "lastTouchedAgo": None, "decision": "clean",
                                "rule": "clean"}]  # fmt: skip
        self.namespace = {"model": {**VARIABLE, "verdict": "keep"},
                          "frames": {**VARIABLE, "name": "frames", "type": "ndarray",
                                     "device": None, "pagedBytes": 32 * MiB}}  # fmt: skip
        self.paged_out = {"frames": 32 * MiB}
        self.report: dict[str, t.Any] | None = CLEANUP
        self.traceback: list[str] = []
        self.state = {
            "executionCount": 12, "nextCleanupIn": 88, "nextOptimizeIn": None,
            "cleanups": 1, "optimizations": 0, "pagedBytes": 32 * MiB,
            "pagingDirectory": None, "pagingNotice": "", "pagingPaused": "thread 'w' runs",
            "pagingFailure": None, "budgetRefusal": None, "guardThreshold": 0.95,
            "guardThresholdBytes": 1459 * MiB, "guardStops": 1, "previousKernel": None,
            "checkpoint": "auto", "checkpointLatest": None, "checkpointProblem": None,
            "checkpointMs": None,
        }  # fmt: skip
        self.reports = [
            {"kind": "cleanup", "trigger": "memory", "executionCount": 9, "durationMs": 5.0,
             "freedBytes": MiB, "pressureBefore": 0.9, "pressureAfter": 0.5,
             "pagedBytes": 32 * MiB, "paged": ["frames"]},
            {"kind": "optimize", "trigger": "manual", "executionCount": 11, "durationMs": 1.5,
             "freedBytes": 0},
        ]  # fmt: skip

    def stats(self) -> dict[str, t.Any]:
        return {
            "executionCount": 12, "memoryPressure": 0.4567, "rssBytes": 2 * MiB,
            "avgExecutionTime": 3.25, "preservedVariables": [], "cleanupCount": 1,
            "cuda": [{"device": 0, "reserved": MiB, "total": 80 * 1024 * MiB}],
            "memoryBudget": {"limitBytes": 4 * MiB, "unreclaimableBytes": MiB,
                             "pagedBytes": 0, "held": False},
        }  # fmt: skip

    def vars(self) -> list[dict[str, t.Any]]:
        return self.rows

    def why(self, name: str) -> dict[str, t.Any]:
        return self.namespace[name]

    def status(self) -> dict[str, t.Any]:
        return self.state

    def memory(self) -> dict[str, t.Any]:
        return {}

    def previous_kernel(self) -> dict[str, t.Any] | None:
        return None

    def history(self) -> list[dict[str, t.Any]]:
        return self.reports

    def cleanup(self, trigger: str, full: bool = False) -> dict[str, t.Any] | None:
        self.calls.append(("cleanup", trigger, full))
        return self.report

    def optimize(self, trigger: str) -> dict[str, t.Any] | None:
        self.calls.append(("optimize", trigger))
        if self.report is None:
            return None
        return {"gradsCleared": 3, "cudaEmptied": [0], "durationMs": 2.0}

    def preserve(self, names: Iterable[str]) -> None:
        self.calls.append(("preserve", list(names)))

    def unpreserve(self, names: Iterable[str]) -> None:
        self.calls.append(("unpreserve", list(names)))

    def paged(self) -> dict[str, int]:
        return dict(self.paged_out)

    def restore(self, names: Iterable[str]) -> int:
        self.calls.append(("restore", list(names)))
        return sum(self.paged_out.pop(n) for n in list(names))

    def shown_traceback(self) -> list[str]:
        return self.traceback

    def settings(self) -> dict[str, t.Any]:
        return {"cleanup_interval": 100}

    def checkpoint(self) -> dict[str, t.Any] | None:
        self.calls.append(("checkpoint",))
        return dict(CHECKPOINT)

    def checkpoints(self) -> list[dict[str, t.Any]]:
        return [dict(CHECKPOINT)]

    def resume(self, id: str | None = None) -> dict[str, t.Any]:
        self.calls.append(("resume", id))
        if id == "9":
            raise LookupError("no checkpoint '9'; this notebook has 3")
        return {
            "checkpoint": dict(CHECKPOINT), "bound": ["model", "np"], "failed": {},
            "unstorable": [{"name": "gen", "reason": "TypeError: cannot pickle", "cell": 4}],
            "leftOut": [], "notes": [], "replay": {"4": "gen = iter([])"}, "seconds": 0.5,
        }  # fmt: skip

    def forget(self) -> int:
        self.calls.append(("forget",))
        return 3 * MiB

    def resumable(self) -> dict[str, t.Any] | None:
        return None


@dataclass
class Ran:
    result: t.Any
    stdout: str
    stderr: str
    shown: list[dict[str, str]]  # the display_data bundles

    @property
    def text(self) -> str:
        return "\n".join(d["text/plain"] for d in self.shown)


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    created = not InteractiveShell.initialized()
    c = Config()
    c.HistoryManager.hist_file = ":memory:"
    sh = InteractiveShell.instance(config=c)
    sh.find_line_magic("tb")  # IPython loads %tb lazily: loaded before the snapshot
    sh.history_manager.reset(new_session=True)  # lines no earlier test of this shell wrote
    line_magics = dict(sh.magics_manager.magics["line"])
    try:
        yield sh
    finally:  # IPython's own %tb back, and no %greed, for whoever uses the shell next
        sh.magics_manager.magics["line"].clear()
        sh.magics_manager.magics["line"].update(line_magics)
        sh.magics_manager.registry.pop("GreedMagics", None)
        sh.reset(new_session=False)
        if created:
            InteractiveShell.clear_instance()


@pytest.fixture
def service(shell: InteractiveShell) -> FakeService:
    fake = FakeService()
    shell.register_magics(GreedMagics(shell, fake))
    return fake


def run(shell: InteractiveShell, cell: str) -> Ran:
    with capture_output() as cap:
        result = shell.run_cell(cell, store_history=True)
    return Ran(result, cap.stdout, cap.stderr, [o.data for o in cap.outputs])


def ok(shell: InteractiveShell, cell: str) -> Ran:
    ran = run(shell, cell)
    assert ran.result.success, (cell, ran)
    assert ran.result.result is None  # nothing lands in Out
    return ran


def test_the_protocol_is_the_designed_service() -> None:
    declared = {n for n in vars(Service) if not n.startswith("_")}
    assert declared == SERVICE_METHODS
    assert {n for n in vars(FakeService) if not n.startswith("_")} == SERVICE_METHODS


@pytest.mark.parametrize("cell", ["%greed", "%greed help", "%greed -h", "%greed --help"])
def test_help_lists_every_subcommand(
    shell: InteractiveShell, service: FakeService, cell: str
) -> None:
    ran = ok(shell, cell)
    assert ran.stdout.startswith("Usage: %greed ") and not ran.stderr and not ran.shown
    for usage in SUBCOMMANDS:
        assert f"\n%greed {usage} " in ran.stdout, usage


def test_question_mark_shows_the_real_usage(shell: InteractiveShell, service: FakeService) -> None:
    text = shell.object_inspect_text("%greed")
    for usage in SUBCOMMANDS:
        assert f"%greed {usage} " in text, usage
    assert "%tb [mode]" in shell.object_inspect_text("%tb")


def test_vars_is_one_table_in_text_and_html(shell: InteractiveShell, service: FakeService) -> None:
    ran = ok(shell, "%greed vars")
    assert ran.stdout == "" and len(ran.shown) == 1
    assert set(ran.shown[0]) == {"text/plain", "text/html"}
    lines = ran.text.splitlines()
    assert lines[0] == "Greed: 2 variables"
    words = [" ".join(line.split()) for line in lines]
    assert words[1] == "name type size device last touched decision"
    assert words[3] == "model Module 3.0 MiB cuda:0 4 s ago (cell 7) keep (recent)"
    assert words[4] == "n int 28 B never clean"
    html = ran.shown[0]["text/html"]
    assert "<caption style='text-align:left'><b>Greed: 2 variables</b></caption>" in html
    assert "<td style='text-align:left'>model</td>" in html
    service.rows = []
    assert ok(shell, "%greed vars").stdout == "Greed: no user variables yet.\n"


def test_why_says_rule_last_touch_size_and_paging(
    shell: InteractiveShell, service: FakeService
) -> None:
    ran = ok(shell, "%greed why model")
    assert ran.stdout == (
        "model: used in the last 3 cells. Rule: recent. Last touched: 4 s ago (cell 7). "
        "Size: 3.0 MiB on cuda:0.\n"
    )
    ran = ok(shell, "%greed why frames")
    assert ran.stdout.startswith("frames: ") and "Size: 3.0 MiB. " in ran.stdout
    assert "Paged out: 32 MiB of its memory is backed by a file" in ran.stdout


def test_preserve_and_unpreserve(shell: InteractiveShell, service: FakeService) -> None:
    shell.user_ns["kept"] = 1
    ran = ok(shell, "%greed preserve kept later")
    assert ran.stdout == (
        "Greed: preserving kept, later. Not defined yet (kept once defined): later.\n"
    )
    ran = ok(shell, "%greed unpreserve kept")
    assert ran.stdout == "Greed: no longer preserving kept (recent use still keeps them).\n"
    assert service.calls == [("preserve", ["kept", "later"]), ("unpreserve", ["kept"])]


def test_cleanup_and_optimize(shell: InteractiveShell, service: FakeService) -> None:
    ran = ok(shell, "%greed cleanup")
    assert ran.stdout == (
        "Greed: cleanup deleted 3 names, paged out 32 MiB of frames, released 2 outputs and "
        "the stored error; RSS 300 MiB -> 200 MiB in 12.3 ms.\n"
    )
    ok(shell, "%greed cleanup --full")
    ran = ok(shell, "%greed optimize")
    assert ran.stdout == (
        "Greed: optimisation cleared 3 stale gradients, emptied the CUDA cache on 1 devices "
        "in 2.0 ms.\n"
    )
    assert service.calls == [
        ("cleanup", "manual", False),
        ("cleanup", "manual", True),
        ("optimize", "manual"),
    ]


def test_a_failed_cleanup_is_one_line_and_not_a_usage_error(
    shell: InteractiveShell, service: FakeService
) -> None:
    service.report = None
    for sub, what in (("cleanup", "cleanup"), ("optimize", "optimisation")):
        ran = ok(shell, f"%greed {sub}")
        assert ran.stdout == "" and ran.stderr == f"Greed: the {what} failed; see the kernel log.\n"


def test_paged_lists_names_types_and_bytes(shell: InteractiveShell, service: FakeService) -> None:
    ran = ok(shell, "%greed paged")
    assert len(ran.shown) == 1 and ran.text.splitlines()[0] == "Greed: paged out"
    assert ran.text.splitlines()[3].split() == ["frames", "ndarray", "32", "MiB"]
    service.paged_out = {}
    assert ok(shell, "%greed paged").stdout == "Greed: nothing is paged out.\n"


def test_restore_names_or_all(shell: InteractiveShell, service: FakeService) -> None:
    ran = ok(shell, "%greed restore frames")
    assert ran.stdout == "Greed: read 32 MiB of frames back into RAM.\n"
    assert ok(shell, "%greed restore --all").stdout == "Greed: nothing is paged out.\n"
    service.paged_out = {"a": MiB, "b": MiB}
    ran = ok(shell, "%greed restore --all")
    assert ran.stdout == "Greed: read 2.0 MiB of a, b back into RAM.\n"
    assert service.calls == [("restore", ["frames"]), ("restore", ["a", "b"])]


def test_stats_renders_each_kind_of_value(shell: InteractiveShell, service: FakeService) -> None:
    ran = ok(shell, "%greed stats")
    assert len(ran.shown) == 1 and "<table" in ran.shown[0]["text/html"]
    rows = {line.split()[0]: line.split(None, 1)[1] for line in ran.text.splitlines()[3:]}
    assert rows["executionCount"] == "12"
    assert rows["memoryPressure"] == "45.7%"
    assert rows["rssBytes"] == f"2.0 MiB ({2 * MiB})"
    assert rows["avgExecutionTime"] == "3.2 ms"
    assert rows["preservedVariables"] == "(none)"
    assert rows["cuda"] == "cuda:0 1.0 MiB reserved of 80 GiB"
    assert rows["memory:budget"] == (
        "1.0 MiB of 4.0 MiB not reclaimable (25%); 0 B paged out; NOT held: see %greed status"
    )


def test_status_from_status_reports_and_settings(
    shell: InteractiveShell, service: FakeService
) -> None:
    service.state["budgetRefusal"] = {
        "executionCount": 10, "pressure": 0.97, "limitBytes": 4 * MiB,
        "holders": [{"name": "big", "bytes": 3 * MiB}],
    }  # fmt: skip
    ran = ok(shell, "%greed status")
    assert len(ran.shown) == 1 and "text/html" in ran.shown[0]
    rows = [" ".join(line.split()) for line in ran.text.splitlines()]
    assert rows[0] == f"Greed {greed_kernel.__version__} status"
    for row in (
        f"version {greed_kernel.__version__}",
        "executions 12",
        "next periodic cleanup in 88 executions",
        "next periodic optimize disabled",
        "cleanups 1",
        "optimisations 0",
        "paged out now 32 MiB",
        "paging directory (chosen at the first page-out)",
        "memory budget not held since cell 10: 97% of 4.0 MiB; largest in RAM: big 3.0 MiB",
        "budget cleanup cell 9: pressure 90% -> 50%, paged 32 MiB (frames)",
        "paging paused thread 'w' runs",
        "GreedKernel.cleanup_interval 100",
        "last cleanup cell 9 (memory): 5.0 ms, freed 1.0 MiB",
        "last optimize cell 11 (manual): 1.5 ms, freed 0 B",
    ):
        assert row in rows, (row, rows)
    assert "paging notice" not in ran.text and "last paging failure" not in ran.text


BAD = {
    "%greed bogus": "argument SUBCOMMAND: invalid choice: 'bogus'",
    "%greed why": "the following arguments are required: NAME (usage: %greed why NAME)",
    "%greed why a b": "unrecognized arguments: b (usage: %greed why NAME)",
    "%greed why 1x": "argument NAME: not a variable name: '1x' (usage: %greed why NAME)",
    "%greed why nosuchname": "no variable named 'nosuchname'",
    "%greed preserve": "the following arguments are required: NAME (usage: %greed preserve",
    "%greed unpreserve a-b": "argument NAME: not a variable name: 'a-b'",
    "%greed preserve class": "argument NAME: not a variable name: 'class'",
    "%greed cleanup --fast": "unrecognized arguments: --fast (usage: %greed cleanup [--full])",
    "%greed vars x": "unrecognized arguments: x (usage: %greed vars)",
    "%greed restore": "give NAME... or --all (usage: %greed restore NAME... | --all)",
    "%greed restore frames --all": "give NAME... or --all",
    "%greed restore model frames": "not paged out: model",
    "%greed why 'x": "cannot parse arguments (No closing quotation)",
    "%tb plain extra": "unrecognized arguments: extra",
}


@pytest.mark.parametrize("cell", list(BAD))
def test_bad_input_is_one_usage_error_line(
    shell: InteractiveShell, service: FakeService, cell: str
) -> None:
    ran = run(shell, cell)
    assert not ran.result.success and isinstance(ran.result.error_in_exec, UsageError)
    assert ran.stdout == "" and not ran.shown
    assert ran.stderr.startswith(f"UsageError: {BAD[cell]}"), ran.stderr
    assert ran.stderr.count("\n") == 1 and "Traceback" not in ran.stderr
    assert not service.calls  # nothing was done


@pytest.fixture
def no_last_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """No stored error (as after Greed released it); the real one is back afterwards."""
    for name in ("last_type", "last_value", "last_traceback"):
        monkeypatch.delattr(sys, name, raising=False)  # set back afterwards if it was


def test_tb_shows_the_released_errors_text(
    shell: InteractiveShell, service: FakeService, no_last_error: None
) -> None:
    service.traceback = ["Traceback (most recent call last):", "MemoryError: out of it"]
    ran = ok(shell, "%tb")
    assert ran.stdout == "Traceback (most recent call last):\nMemoryError: out of it\n"
    assert ran.stderr.startswith("(Greed released this error's frames")


def test_tb_falls_back_to_ipythons(
    shell: InteractiveShell, service: FakeService, no_last_error: None
) -> None:
    ran = ok(shell, "%tb")  # nothing stored, nothing shown: IPython's answer
    assert "No traceback available" in ran.stdout + ran.stderr
    service.traceback = ["the shown text, stale"]
    run(shell, "1 / 0")  # a stored error again: %tb is IPython's
    ran = ok(shell, "%tb plain")
    assert "ZeroDivisionError" in ran.stdout and "stale" not in ran.stdout + ran.stderr
