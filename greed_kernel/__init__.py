"""Greed: an IPython kernel for long PyTorch sessions that keeps memory flat."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["GreedKernel", "__version__"]


def __getattr__(name: str):
    # Lazy so that `import greed_kernel` (e.g. for __version__ or the client)
    # does not import ipykernel.
    if name == "GreedKernel":
        from .kernel import GreedKernel

        return GreedKernel
    raise AttributeError(name)
