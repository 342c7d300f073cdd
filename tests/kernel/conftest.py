"""The tests in tests/kernel are of the `kernel` tier: real kernel processes, or other
heavy subprocesses (pip, jest, the benchmarks)."""

from __future__ import annotations

import pytest


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark each test collected under this folder (a path-sensitive hook: only these)."""
    item.add_marker(pytest.mark.kernel)
