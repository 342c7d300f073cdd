"""Namespace surgery on an IPython shell: the parts of a cleanup that free memory.

Each function does one thing to the shell and returns what it did. They know
nothing of policy: the engine decides *what* goes, these functions make sure
it really goes, i.e. that no hidden IPython reference keeps the object alive.

Where IPython holds references (measured on IPython 9):
- ``Out``/``_oh`` (the same dict as ``history_manager.output_hist``);
- ``_N`` in both ``user_ns`` and ``user_ns_hidden``;
- ``_``, ``__``, ``___`` on the displayhook *and* in both namespaces;
- ``shell.last_execution_result.result`` (and ``.error_in_exec``);
- the last error in ``sys.last_type/last_value/last_traceback/last_exc`` and
  ``shell.InteractiveTB.tb``.
"""

from __future__ import annotations

import contextlib
import sys
import typing as t
from collections.abc import Callable, Iterable

_LAST_ERROR_ATTRS = ("last_type", "last_value", "last_traceback", "last_exc")
_HISTORY_NAMES = ("_", "__", "___")


def delete_names(shell: t.Any, names: Iterable[str]) -> list[str]:
    """Delete *names* and the output-cache references IPython keeps to their objects.

    Like ``InteractiveShell.del_var(name)`` (by object, in the output cache,
    ``_N``, the displayhook and the last result), done for many names in one
    pass, safe when ``last_execution_result`` is None, and unlike ``del_var``
    never deleting *another user name* bound to the same object: ``_temp = model``
    must not take ``model`` with it.
    """
    user_ns = shell.user_ns
    doomed: dict[int, t.Any] = {}
    deleted = []
    for name in names:
        if name in user_ns:
            obj = user_ns.pop(name)
            doomed[id(obj)] = obj
            deleted.append(name)
    if not doomed:
        return deleted

    def is_doomed(obj: t.Any) -> bool:
        return id(obj) in doomed and obj is doomed[id(obj)]

    for ns in _namespaces(shell):
        for key in [k for k, v in ns.items() if is_doomed(v)]:
            # In the user's namespace only the output-cache names go, never other names.
            if key in _HISTORY_NAMES or (ns is not shell.user_ns_hidden and not _is_cache_key(key)):
                continue
            del ns[key]
    _forget_in_displayhook(shell, is_doomed)
    return deleted


def _is_cache_key(key: t.Any) -> bool:
    """An ``Out`` key (int) or an ``_N`` name."""
    return isinstance(key, int) or (
        isinstance(key, str) and len(key) > 1 and key[0] == "_" and key[1:].isdigit()
    )


def release_outputs(
    shell: t.Any, keep_last: int, is_recent: Callable[[int], bool] = lambda n: False
) -> list[int]:
    """Release output-cache entries older than the last *keep_last* executions.

    Entries whose ``_N`` name was touched recently (``is_recent(N)``) stay. A
    released object is dropped from ``Out``, ``_N`` in both namespaces,
    ``_``/``__``/``___`` and the last execution result.
    """
    oh = shell.user_ns.get("_oh")
    if not isinstance(oh, dict) or not oh:
        return []
    newest = shell.execution_count - 1  # the number of the last cell that ran
    cutoff = newest - keep_last  # entries <= cutoff go
    released = [n for n in list(oh) if isinstance(n, int) and n <= cutoff and not is_recent(n)]
    if not released:
        return []
    gone: dict[int, t.Any] = {}
    kept_ids = {id(v) for k, v in oh.items() if k not in released}
    for n in released:
        obj = oh.pop(n)
        for ns in (shell.user_ns, shell.user_ns_hidden):
            if ns.get(f"_{n}") is obj:
                del ns[f"_{n}"]
        if id(obj) not in kept_ids:
            gone[id(obj)] = obj
    if gone:
        _forget_in_displayhook(shell, lambda obj: id(obj) in gone and obj is gone[id(obj)])
    return released


def release_last_error(shell: t.Any) -> bool:
    """Drop the stored last error so its frames (and their tensors) can be freed.

    After this ``%debug`` says there is no traceback to debug, as in a fresh
    session, instead of opening frames that pin memory.
    """
    released = False
    for attr in _LAST_ERROR_ATTRS:
        if getattr(sys, attr, None) is not None:
            released = True
        with contextlib.suppress(AttributeError):
            delattr(sys, attr)
    tb_holder = getattr(shell, "InteractiveTB", None)
    if tb_holder is not None and getattr(tb_holder, "tb", None) is not None:
        tb_holder.tb = None
        released = True
    result = getattr(shell, "last_execution_result", None)
    if result is not None and getattr(result, "error_in_exec", None) is not None:
        result.error_in_exec = None
        released = True
    return released


def error_stored(shell: t.Any) -> bool:
    """True while the last error (and so its frames) is still held somewhere."""
    if any(getattr(sys, attr, None) is not None for attr in _LAST_ERROR_ATTRS):
        return True
    return getattr(getattr(shell, "InteractiveTB", None), "tb", None) is not None


def _namespaces(shell: t.Any) -> list[dict[str, t.Any]]:
    spaces = [shell.user_ns, shell.user_ns_hidden]
    oh = shell.user_ns.get("_oh")
    if isinstance(oh, dict):
        spaces.append(oh)
    return spaces


def release_output(shell: t.Any, n: int) -> bool:
    """Release one output-cache entry: ``Out[n]`` and ``_n`` (in both namespaces).
    Left alone (nothing changes, the periodic cleanup sees to it later) where the
    displayhook's ``_``/``__``/``___`` or the last execution result hold its value.
    Whether it was released."""
    oh = shell.user_ns.get("_oh")
    if not isinstance(oh, dict) or n not in oh:
        return False
    obj = oh[n]
    hook = shell.displayhook
    if any(getattr(hook, name, None) is obj for name in _HISTORY_NAMES):
        return False
    result = getattr(shell, "last_execution_result", None)
    if result is not None and getattr(result, "result", None) is obj:
        return False
    del oh[n]
    for ns in (shell.user_ns, shell.user_ns_hidden):
        if ns.get(f"_{n}") is obj:
            del ns[f"_{n}"]
    return True


def _forget_in_displayhook(shell: t.Any, doomed: Callable[[t.Any], bool]) -> None:
    """Replace ``_``/``__``/``___`` and the last result where they hold a doomed object."""
    hook = shell.displayhook
    for name in _HISTORY_NAMES:
        if doomed(getattr(hook, name, None)):
            setattr(hook, name, "")
        for ns in (shell.user_ns, shell.user_ns_hidden):
            if name in ns and doomed(ns[name]):
                ns[name] = ""
    result = getattr(shell, "last_execution_result", None)
    if result is not None and doomed(getattr(result, "result", None)):
        result.result = None
