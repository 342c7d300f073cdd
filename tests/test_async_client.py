"""AsyncGreedClient on jupyter_client's asyncio client."""

from __future__ import annotations

import asyncio

import pytest
from jupyter_client.manager import AsyncKernelManager

from greed_kernel.client import AsyncGreedClient, GreedError

pytestmark = pytest.mark.timeout(120)


async def _session() -> dict:
    km = AsyncKernelManager(kernel_name="greed")
    await km.start_kernel(extra_arguments=["--GreedKernel.cleanup_interval=3"])
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        greed = await AsyncGreedClient.open(kc)
        cleanups: list[dict] = []
        greed.on("execution:cleanup", cleanups.append)
        for i in range(3):
            reply = await greed.execute(f"x{i} = {i}")
            assert reply["status"] == "ok"
        stats = await greed.stats()
        report = await greed.cleanup()
        with pytest.raises(GreedError):
            await greed.request({"request": "nonsense"}, "never")
        await greed.close()
        return {"hello": greed.hello, "cleanups": cleanups, "stats": stats, "report": report}
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)


def test_async_client_round_trips(jupyter_sandbox):
    result = asyncio.run(_session())
    assert result["hello"]["event"] == "hello"
    assert [e["report"]["trigger"] for e in result["cleanups"]] == ["periodic", "manual"]
    assert result["cleanups"][0]["stats"]["executionCount"] == 3
    assert result["stats"]["executionCount"] == 3
    assert result["report"]["trigger"] == "manual"
