"""Benchmarks: the greed kernel against the stock python3 kernel, side by side.

Run ``python -m benchmarks`` (``make bench``); see ``benchmarks/__main__.py``.
"""
