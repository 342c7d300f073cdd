"""Access stamps and indirect use through session-defined code (pure unit tests)."""

from __future__ import annotations

import functools

import pytest

from greed_kernel.analysis.tracker import Tracker

pytestmark = pytest.mark.timeout(30)


def session(src: str) -> dict:
    """Run *src* as a notebook would: functions' __globals__ is the namespace itself."""
    ns: dict = {"__name__": "__main__"}
    exec(compile(src, "<cell>", "exec"), ns)
    return ns


def test_touch_stamps_time_and_execution():
    t = Tracker({})
    t.touch(["a", "b"], execution=7, now=100.0)
    assert t.last["a"] == (100.0, 7)
    t.touch(["a"], execution=9, now=200.0)
    assert t.last["a"].execution == 9 and t.last["b"].execution == 7


def test_function_globals_are_touched_transitively():
    ns = session(
        "optimizer = object()\nmodel = object()\nunused = 1\n"
        "def step():\n    optimizer\n    return helper()\n"
        "def helper():\n    return model\n"
    )
    t = Tracker(ns)
    t.touch(["step"], execution=1, now=1.0)
    assert {"step", "optimizer", "helper", "model"} <= set(t.last)
    assert "unused" not in t.last


def test_nested_code_lambdas_partials_methods_and_classes():
    ns = session(
        "a = 1\nb = 2\nc = 3\nd = 4\ne = 5\n"
        "def outer():\n    def inner():\n        return a\n    return inner\n"
        "f = lambda: b\n"
        "def g(x, y):\n    return c\n"
        "p = __import__('functools').partial(g, 1)\n"
        "class K:\n    def m(self):\n        return d\n    @property\n    def prop(self):\n"
        "        return e\n"
        "k = K()\nbm = k.m\n"
    )
    t = Tracker(ns)
    t.touch(["outer"], 1, 1.0)
    assert "a" in t.last
    t.touch(["f"], 1, 1.0)
    assert "b" in t.last
    t.touch(["p"], 1, 1.0)
    assert "c" in t.last
    t.touch(["bm"], 1, 1.0)
    assert "d" in t.last
    t.touch(["K"], 1, 1.0)
    assert "e" in t.last


def test_code_from_other_modules_is_not_followed():
    ns = session("import json\nloads = json.loads\nindent = 1\n")
    ns["dumps"] = functools.partial(__import__("json").dumps, indent=2)
    t = Tracker(ns)
    t.touch(["loads", "dumps"], 1, 1.0)
    assert "indent" not in t.last


def test_recursion_and_cycles_are_bounded():
    src = "".join(f"def f{i}():\n    return f{i + 1}()\n" for i in range(200))
    src += "def f200():\n    return f0()\nleaf = 1\n"
    ns = session(src)
    t = Tracker(ns)
    t.touch(["f0"], 1, 1.0)  # must terminate; follows at most MAX_CALLABLES functions
    assert "f1" in t.last
    assert len(t.last) < 200


def test_hostile_objects_are_ignored():
    class Meta(type):
        def __getattribute__(cls, name):
            raise RuntimeError("hostile")

    class Liar:
        @property
        def __class__(self):
            raise RuntimeError("hostile")

    ns = session("x = 1\n")
    ns["H"] = Meta("H", (), {})
    ns["liar"] = Liar()
    t = Tracker(ns)
    t.touch(["H", "liar"], 1, 1.0)
    assert {"H", "liar"} <= set(t.last)


def test_forget_missing_keeps_output_names():
    ns = {"a": 1}
    t = Tracker(ns)
    t.touch(["a", "gone", "_12"], 1, 1.0)
    t.forget_missing()
    assert set(t.last) == {"a", "_12"}
