"""One vocabulary: the options, their help and the protocol say *page*, never *spill*."""

from __future__ import annotations

import json

from greed_kernel.frontends import protocol
from greed_kernel.kernel import GreedKernel


def test_the_options_and_their_help_say_page() -> None:
    traits = GreedKernel.class_own_traits(config=True)
    assert {"paging_dir", "paging_max_bytes"} <= set(traits)
    assert traits["evict"].values == ["page", "off", "delete"]
    assert "spill" not in GreedKernel.class_get_help().lower()


def test_the_protocol_says_page() -> None:
    assert "spill" not in json.dumps(protocol.schema()).lower()
