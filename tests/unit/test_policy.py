"""The preservation rules, one by one and in their order (pure unit tests)."""

from __future__ import annotations

import functools
import math
import types

import pytest

from greed_kernel.analysis.tracker import Access
from greed_kernel.engine.policy import Policy, Verdict
from greed_kernel.kernel import DEFAULT_PRESERVE

pytestmark = pytest.mark.timeout(30)

NOW = 10_000.0
OLD = Access(NOW - 3600, 3)  # an hour ago: stale
RECENT = Access(NOW - 10, 41)
BIG = 64 << 20


def policy(**kw):
    kw.setdefault("preserve", DEFAULT_PRESERVE)
    return Policy(**kw)


VALUE = object()


def decide(p, name, value=VALUE, access=OLD, size=BIG):
    return p.decide(name, value, access, NOW, size)


@pytest.mark.parametrize("name", ["model", "optimizer", "X", "y", "losses", "history", "np"])
def test_rule1_default_list_keeps_greedjs_names(name):
    d = decide(policy(), name)
    assert (d.verdict, d.rule) == (Verdict.KEEP, "preserved")
    assert repr(name) in d.reason


def test_rule1_glob_patterns_and_marks():
    p = policy(preserve=["ckpt_*"], marked={"mine"})
    assert decide(p, "ckpt_3").rule == "preserved"
    assert decide(p, "mine").rule == "marked"
    assert decide(p, "other").verdict is Verdict.STALE


def test_unmarked_overrides_the_configured_list_but_not_recent_use():
    p = policy(unmarked={"model"})
    assert decide(p, "model").verdict is Verdict.STALE
    assert decide(p, "model", access=RECENT).rule == "recent"


def test_rule2_recent_window():
    p = policy(recent_window=300)
    d = decide(p, "thing", access=RECENT)
    assert (d.verdict, d.rule) == (Verdict.KEEP, "recent")
    assert "cell 41" in d.reason and "10 s ago" in d.reason
    assert decide(p, "thing", access=Access(NOW - 301, 1)).verdict is Verdict.STALE


def test_rule2_recent_cells_at_machine_pace():
    """Touched 10 s ago but 25 cells ago: not recent when recent_cells is 20; the
    seconds and the count must both hold."""
    p = policy(recent_window=300, recent_cells=20, execution=66)
    assert decide(p, "thing", access=Access(NOW - 10, 47)).rule == "recent"  # 19 cells ago
    d = decide(p, "thing", access=Access(NOW - 10, 46))  # 20 cells ago
    assert d.verdict is Verdict.STALE
    assert "20 cells ago" in d.reason and "last 20 cells" in d.reason
    assert decide(p, "thing", access=Access(NOW - 301, 65)).verdict is Verdict.STALE
    assert "and the last 20 cells" in decide(p, "thing", access=Access(NOW - 1, 65)).reason
    # 0: the seconds alone
    p = policy(recent_window=300, recent_cells=0, execution=10_000)
    assert decide(p, "thing", access=Access(NOW - 10, 1)).rule == "recent"


@pytest.mark.parametrize(("evict", "cells"), [("page", 20), ("off", 20), ("delete", 0)])
def test_rule2_with_evict_delete_only_the_seconds_count(evict, cells):
    """A deleted value is lost: with evict='delete' nothing touched within the window
    is stale, however many cells ran since."""
    from greed_kernel.engine.policy import Marks

    settings = types.SimpleNamespace(
        preserve=[],
        temporary_patterns=[],
        recent_window=300.0,
        recent_cells=20,
        evict=evict,
        evict_min_bytes=1,
    )
    p = Marks().policy(settings, frozenset(), execution=500)
    assert p.recent_cells == cells
    recent = decide(p, "thing", access=Access(NOW - 10, 100)).rule == "recent"
    assert recent is (evict == "delete")


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("__name__", "__main__", "dunder"),
        ("m", math, "module"),
        ("json", 1, "module"),  # a name in sys.modules
        ("Out", {}, "internal"),
        ("_12", object(), "internal"),
        ("_i7", "x = 1", "internal"),
        ("get_ipython", print, "internal"),
        ("_jupyterlab_variableinspector_dict_list", print, "internal"),
        ("hidden_by_ipython", object(), "internal"),
    ],
)
def test_rule3_internals(name, value, rule):
    p = policy(hidden={"hidden_by_ipython"})
    assert decide(p, name, value).rule == rule


def _f():
    return 1


class _C:
    pass


@pytest.mark.parametrize("value", [_f, _C, _C.__init__, len, functools.partial(_f), lambda: 0])
def test_rule4_code_is_kept(value):
    assert decide(policy(), "some_code", value).rule == "code"


def test_rule5_temporaries_are_cleaned():
    p = policy()
    assert decide(p, "_temp_x").verdict is Verdict.CLEAN
    assert decide(p, "_out_1", size=0).verdict is Verdict.CLEAN


def test_rule6_stale_only_when_large():
    p = policy(evict_min_bytes=1 << 20)
    assert decide(p, "big", size=2 << 20).verdict is Verdict.STALE
    small = decide(p, "small", size=100)
    assert (small.verdict, small.rule) == (Verdict.KEEP, "small")
    assert decide(p, "unknown", size=None).verdict is Verdict.KEEP


def test_size_is_only_computed_at_the_last_rule():
    calls = []

    def size():
        calls.append(1)
        return BIG

    decide(policy(), "model", size=size)
    decide(policy(), "x", access=RECENT, size=size)
    assert calls == []
    assert decide(policy(), "x", size=size).verdict is Verdict.STALE
    assert calls == [1]


def test_rule_order():
    # marked beats temporary; recent beats temporary; module beats temporary; code beats temporary
    p = policy(marked={"_temp_a"})
    assert decide(p, "_temp_a").rule == "marked"
    assert decide(p, "_temp_b", access=RECENT).rule == "recent"
    assert decide(p, "_temp_m", math).rule == "module"
    assert decide(p, "_temp_f", _f).rule == "code"
    # listed beats recent (the reason names the list, the stronger reason)
    assert decide(p, "model", access=RECENT).rule == "preserved"


def test_hostile_value_lying_about_class():
    class Liar:
        @property
        def __class__(self):
            raise RuntimeError("no")

        def __getattr__(self, name):
            raise RuntimeError("no")

    d = decide(policy(), "liar", Liar(), size=0)
    assert d.verdict is Verdict.KEEP


def test_module_subclass_values():
    assert decide(policy(), "mod", types.ModuleType("fake")).rule == "module"


@pytest.mark.parametrize(
    "name",
    [
        "_i",
        "_ii",
        "_iii",
        "_i7",
        "_ii7",
        "_iii12",
        "_12",
        "_0",
        "_",
        "__",
        "_i_",
        "_x1",
        "_iiii3",
        "_1a",
        "i1",
        "_\u00b2",
        "_\u0663",
    ],
)
def test_history_names_are_exactly_the_internal_cache_names(name: str) -> None:
    """The cheap skip of the namespace walks agrees with rule 3's cache-name test."""
    from greed_kernel.engine.policy import _CACHE_NAME, is_history_name

    assert is_history_name(name) is (_CACHE_NAME.fullmatch(name) is not None)
    if is_history_name(name):
        assert Policy().internal_rule(name, 1) == "internal"
