"""The tests in tests/inprocess are of the `inprocess` tier: an IPython shell (and
Greed's engine) inside the test process."""

from __future__ import annotations

import pytest


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark each test collected under this folder (a path-sensitive hook: only these)."""
    item.add_marker(pytest.mark.inprocess)


@pytest.fixture(autouse=True)
def _runner_threads(runner_threads_ignored: None) -> None:
    """Paging in this process judges only the threads a test starts."""
