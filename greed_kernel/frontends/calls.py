"""The comm's methods by name (``protocol.schema.json``), over one request call: the
part of :class:`~greed_kernel.frontends.client.AsyncGreedClient` a user calls most.
This module imports no kernel code."""

from __future__ import annotations

import typing as t


class NamedCalls:
    """``await client.stats()`` for ``await client.request("stats")``, and so on."""

    async def request(
        self, method: str, params: dict[str, t.Any] | None = None, timeout: float | None = None
    ) -> t.Any:
        raise NotImplementedError  # AsyncGreedClient's

    async def stats(self) -> dict[str, t.Any]:
        """The kernel's STATS dict."""
        return t.cast(dict[str, t.Any], await self.request("stats"))

    async def cleanup(self) -> dict[str, t.Any]:
        """Run a cleanup now; returns its report."""
        return t.cast(dict[str, t.Any], await self.request("cleanup"))

    async def optimize(self) -> dict[str, t.Any]:
        """Run an optimisation now; returns its report."""
        return t.cast(dict[str, t.Any], await self.request("optimize"))

    async def preserve(self, *names: str) -> list[str]:
        """Always keep these names; returns them (at most 200)."""
        return t.cast(list[str], (await self.request("preserve", {"names": list(names)}))["names"])

    async def unpreserve(self, *names: str) -> list[str]:
        """Stop always keeping these names."""
        result = await self.request("unpreserve", {"names": list(names)})
        return t.cast(list[str], result["names"])

    async def vars(self) -> list[dict[str, t.Any]]:
        """The ``%greed vars`` table as data (at most 200 rows)."""
        return t.cast(list[dict[str, t.Any]], (await self.request("vars"))["variables"])

    async def restore(self, *names: str) -> dict[str, t.Any]:
        """Read these names' paged-out memory back into RAM (every name's without
        names); returns ``{"names", "omitted", "bytes"}``."""
        params = {"names": list(names)} if names else {"all": True}
        return t.cast(dict[str, t.Any], await self.request("restore", params))

    async def history(self) -> list[dict[str, t.Any]]:
        """The last reports, oldest first."""
        return t.cast(list[dict[str, t.Any]], (await self.request("history"))["reports"])

    async def checkpoint(self) -> dict[str, t.Any]:
        """Write this notebook's checkpoint now; its summary once it is on disk
        (GreedError where the kernel knows no notebook)."""
        return t.cast(dict[str, t.Any], await self.request("checkpoint"))

    async def checkpoints(self) -> list[dict[str, t.Any]]:
        """This notebook's checkpoints, oldest first."""
        return t.cast(list[dict[str, t.Any]], (await self.request("checkpoints"))["checkpoints"])

    async def resume(self, id: str | None = None) -> dict[str, t.Any]:
        """Bind the stored names of checkpoint *id* (None: the latest); what was bound,
        what was not and why. Nothing is re-run."""
        params = {} if id is None else {"id": id}
        return t.cast(dict[str, t.Any], await self.request("resume", params))

    async def forget(self) -> int:
        """Delete this notebook's checkpoints; the bytes freed."""
        return int((await self.request("forget"))["bytes"])
