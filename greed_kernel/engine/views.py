"""Views: what the magics and the comm show. Read only: nothing here changes the
namespace, the marks or the memory.

- :meth:`Views.variables` and :meth:`Views.why`: each user variable, its size,
  device, last access and what the policy decides for it;
- :meth:`Views.preserved_names`: the names kept now by the user's choices or recent use;
- :meth:`Views.snapshot`: the STATS dict sent with every event (see docs/protocol.md);
- :meth:`Views.status`: counters and paging state for ``%greed status``.
"""

from __future__ import annotations

import typing as t
from collections.abc import Callable

from ..memory.sizes import Size, measure
from .component import Component, low_watermark
from .context import Context
from .housekeeping import USER_RULES
from .policy import Decision, Policy, is_history_name
from .stats import capped


class Views(Component):
    """Read-only views of the namespace, the tracker, the stats and the paged values."""

    def __init__(self, context: Context, **kwargs: t.Any) -> None:
        super().__init__(**kwargs)
        self.shell = context.shell
        self.tracker = context.tracker
        self.store = context.store
        self.probe = context.probe
        self.stats = context.stats
        self.policy = context.policy

    def decide(self, name: str, policy: Policy | None = None) -> tuple[Decision, Size]:
        value = self.shell.user_ns[name]
        size = measure(value)
        policy = policy or self.policy()
        return policy.decide(
            name, value, self.tracker.last.get(name), self.clock(), size.nbytes
        ), size

    def why(self, name: str) -> dict[str, t.Any]:
        """What the policy decides for *name*, and why (KeyError if it is not defined)."""
        decision, size = self.decide(name)
        value = self.shell.user_ns.get(name)
        return {
            "name": name,
            "type": type_name(value),
            "size": size.nbytes,
            "device": size.device,
            "verdict": decision.verdict.value,
            "rule": decision.rule,
            "reason": decision.reason,
            **self._access(name),
            "pagedBytes": self.store.bytes_of(value) if value is not None else 0,
        }

    def _access(self, name: str) -> dict[str, t.Any]:
        access = self.tracker.last.get(name)
        return {
            "lastTouchedAgo": None if access is None else self.clock() - access.time,
            "lastTouchedCell": None if access is None else access.execution,
        }

    def variables(self) -> list[dict[str, t.Any]]:
        """The user's variables with size, device, last access and decision, largest first."""
        policy, rows = self.policy(), []
        paged = self.store.names()
        ns = self.shell.user_ns
        for name in list(ns):
            if is_history_name(name):  # IPython's, never listed (see internal_rule)
                continue
            try:
                decision, size = self.decide(name, policy)
            except Exception:
                self.log.debug("greed: could not describe %r", name, exc_info=True)
                continue
            if policy.internal_rule(name, ns.get(name)) is not None:
                continue
            rows.append(
                {
                    "name": name,
                    "type": type_name(ns.get(name)),
                    "size": size.nbytes,
                    "device": size.device,
                    **self._access(name),
                    "decision": decision.verdict.value,
                    "rule": decision.rule,
                    "reason": decision.reason,
                    "pagedBytes": paged.get(name, 0),
                }
            )
        rows.sort(key=lambda r: (-r["size"], r["name"]))
        return rows

    def preserved_names(self) -> list[str]:
        """Names kept right now because they are marked, listed or recently touched."""
        policy, now, last = self.policy(), self.clock(), self.tracker.last
        ns = self.shell.user_ns
        return [
            name
            for name in list(ns)
            if (policy.is_listed(name) or policy.is_recent(last.get(name), now))
            and policy.internal_rule(name, ns.get(name)) in USER_RULES
        ]

    def snapshot(self) -> dict[str, t.Any]:
        """The STATS dict (see docs/protocol.md)."""
        return self.stats.snapshot(
            preserved=self.preserved_names(),
            rss=self.probe.rss(),
            limit=self.probe.effective_limit(),
            cuda=[_as_dict(d) for d in self.probe.cuda()],
            extra=self._paging_stats(),
        )

    def _paging_stats(self) -> dict[str, t.Any]:
        names, omitted = capped(self.store.names())
        paged_bytes = self.store.total_bytes()
        s = self.options
        return {
            "memoryBudget": {
                "limitBytes": self.probe.effective_limit(),
                "unreclaimableBytes": self.probe.unreclaimable(),
                "pagedBytes": paged_bytes,
                "threshold": s.memory_threshold,
                "lowWatermark": low_watermark(s),
                "held": self.stats.budget_refusal is None,
            },
            "paged": names,
            "pagedOmitted": omitted,
            "pagedBytes": paged_bytes,
            "pagingDirectory": self.store.directory(),
            "pagingNotice": self.store.notice(),
        }

    def status(self, next_due: Callable[[int], int | None]) -> dict[str, t.Any]:
        """Counters and paging state, for ``%greed status``."""
        s, st = self.options, self.stats
        return {
            "executionCount": st.execution_count,
            "nextCleanupIn": next_due(s.cleanup_interval),
            "nextOptimizeIn": next_due(s.optimize_interval),
            "cleanups": st.cleanup_count,
            "optimizations": st.optimize_count,
            "pagedBytes": self.store.total_bytes(),
            "pagingDirectory": self.store.directory(),
            "pagingNotice": self.store.directory_notice(),
            "pagingPaused": self.store.paused,
            "pagingFailure": self.store.failure(),
            "budgetRefusal": self.stats.budget_refusal,
        }


def type_name(obj: t.Any) -> str:
    """``module.Qualname`` of a value's type (just ``Qualname`` for builtins and cells)."""
    kind = type(obj)
    module = getattr(kind, "__module__", "") or ""
    name = getattr(kind, "__qualname__", kind.__name__)
    return name if module in ("builtins", "__main__") else f"{module}.{name}"


def _as_dict(device: t.Any) -> dict[str, t.Any]:
    return {k: getattr(device, k) for k in ("device", "allocated", "reserved", "total")}
