"""AsyncGreedClient on jupyter_client's asyncio client."""

from __future__ import annotations

import asyncio

import pytest
from jupyter_client.manager import AsyncKernelManager
from protocol_schema import check_event, check_result, event_params

from greed_kernel.frontends import protocol
from greed_kernel.frontends.client import AsyncGreedClient, GreedError

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
        with pytest.raises(GreedError) as raised:
            await greed.request("nonsense")
        assert raised.value.code == protocol.METHOD_NOT_FOUND
        # awaited together: each request reads IOPub in turn and takes its own answer
        together = await asyncio.gather(
            greed.stats(), greed.vars(), greed.cleanup(), greed.history(), greed.stats()
        )
        await greed.close()
        return {
            "hello": greed.hello,
            "events": greed.events,
            "cleanups": cleanups,
            "stats": stats,
            "report": report,
            "together": together,
            "unmatched": greed.unmatched,
        }
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)


def test_async_client_round_trips(jupyter_sandbox):
    result = asyncio.run(_session())
    assert result["hello"]["event"] == "hello"
    for event in result["events"]:
        check_event(event["event"], event_params(event))
    triggers = [e["report"]["trigger"] for e in result["cleanups"]]
    assert triggers == ["periodic", "manual", "manual"]
    assert result["cleanups"][0]["stats"]["executionCount"] == 3
    assert result["stats"]["executionCount"] == 3
    assert result["report"]["trigger"] == "manual"
    stats, rows, report, reports, again = result["together"]
    check_result("stats", stats)
    check_result("stats", again)
    assert {r["name"] for r in rows} >= {"x0", "x1", "x2"}
    check_result("cleanup", report)
    assert report["trigger"] == "manual"
    assert [r["kind"] for r in reports][-2:] == ["cleanup", "cleanup"]
    assert result["unmatched"] == []
