"""The tests in tests/browser are of the `browser` tier: JupyterLab driven in a headless
Chromium."""

from __future__ import annotations

import pytest


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark each test collected under this folder (a path-sensitive hook: only these)."""
    item.add_marker(pytest.mark.browser)
