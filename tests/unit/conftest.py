"""The tests in tests/unit are of the `pure` tier: pure logic, no kernel process
and no IPython shell."""

from __future__ import annotations

import pytest


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark each test collected under this folder (a path-sensitive hook: only these)."""
    item.add_marker(pytest.mark.pure)
