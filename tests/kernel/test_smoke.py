"""A real Greed kernel, end to end, with the standard library only: `make test-matrix`
runs this on every interpreter (where there is no torch), `make test` too.

One session leaks the ways notebooks do (a displayed value kept by ``Out``, a
``_temp_*`` temporary, an error whose frame holds a large object), then
``%greed cleanup`` must free all three and keep everything else.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.smoke, pytest.mark.timeout(120)]

SETUP = """\
import weakref


class Blob:
    def __init__(self, n):
        self.data = bytearray(n)

    def __repr__(self):
        return f"Blob({len(self.data)})"


refs = {}
"""

ERROR = """\
def fail():
    local = Blob(4 << 20)
    refs["error"] = weakref.ref(local)
    raise ValueError("boom")


fail()
"""


def test_cleanup_frees_outputs_temporaries_and_the_error(new_kernel) -> None:
    # recent_window=0: nothing counts as recently used, so the cleanup may release it all
    with new_kernel("--GreedKernel.recent_window=0") as k:
        for code in (
            SETUP,
            "Blob(4 << 20)",
            "refs['output'] = weakref.ref(Out[2])",
            "_temp_blob = Blob(4 << 20)\nrefs['temp'] = weakref.ref(_temp_blob)",
            "kept = Blob(1000)\nrefs['kept'] = weakref.ref(kept)",
        ):
            assert k.execute(code).status == "ok", code
        failed = k.execute(ERROR)
        assert failed.status == "error" and failed.error["ename"] == "ValueError"
        for n in range(4):  # push Out[2] past output_cache_keep (3)
            assert k.execute(str(n)).status == "ok"
        alive = "{name: ref() is not None for name, ref in refs.items()}"
        before = k.eval(alive)
        # (the stored error goes as you go, after the next cell: its frame may be freed
        # already by a young collection, or wait for a full one)
        assert before.startswith("{'output': True, 'temp': True, 'kept': True, 'error': "), before
        assert k.eval("hasattr(__import__('sys'), 'last_value')") == "False"

        cleanup = k.execute("%greed cleanup")
        assert cleanup.status == "ok", cleanup

        assert k.eval(alive) == "{'output': False, 'temp': False, 'kept': True, 'error': False}"
        assert k.eval("'_temp_blob' in globals(), kept") == "(False, Blob(1000))"
        assert k.execute("%greed status").status == "ok"
