"""Programs for the differential harness (tests/differential.py).

Each program is a list of cells, run after the harness's prelude (``np``,
``torch`` or None, ``cs(x)`` a fingerprint of a value's bytes). Between any two
cells greed pages out every stale tensor and array, so each program checks that
a value paged out in one cell is, in a later cell, exactly what python3 has.
Programs marked ``torch`` need torch and are skipped without it.

The names avoid GreedKernel's default preserve list (``model``, ``data``,
``X``...), which would keep them out of the eviction under test.
"""

from __future__ import annotations

N = 1 << 18  # float64 elements: 2 MiB, many whole pages

#: name -> (needs torch, cells)
PROGRAMS: dict[str, tuple[bool, list[str]]] = {
    # -- a rebinding that does not happen keeps the value -----------------------------
    "failing_load_keeps_value": (
        False,
        [f"features = np.random.rand({N})", "features = np.load('missing.npy')", "cs(features)"],
    ),
    "rebinding_in_dead_branch": (
        False,
        [
            f"features = np.random.rand({N})",
            "if False:\n    features = None",
            "for features in []:\n    pass",
            "cs(features)",
        ],
    ),
    "global_in_uncalled_function": (
        False,
        [
            f"features = np.random.rand({N})",
            "def f():\n    global features\n    features = None",
            "cs(features)",
        ],
    ),
    "failing_assignment_in_try": (
        False,
        [
            f"features = np.random.rand({N})",
            "try:\n    features = 1 / 0\nexcept ZeroDivisionError:\n    pass",
            "cs(features)",
        ],
    ),
    "memory_error_keeps_other_values": (
        False,
        [
            f"features = np.random.rand({N})",
            "preds = np.ones((1 << 62,))",
            "print(cs(features), 'preds' in globals())",
        ],
    ),
    "rebinding_gets_new_value": (
        False,
        [f"x = np.random.rand({N})", "y1 = cs(x)", f"x = np.zeros({N})", "print(cs(x), y1)"],
    ),
    # -- identity, weak references, flags ---------------------------------------------
    "identity_and_weakrefs": (
        False,
        [
            f"arr = np.random.rand({N})\nident = id(arr)\nref = weakref.ref(arr)",
            "fin = weakref.finalize(arr, print, 'finalized')",
            "print(id(arr) == ident, ref() is arr, fin.alive)",
            "del arr",
            "print(ref() is None, fin.alive)",
        ],
    ),
    "read_only_array_stays_read_only": (
        False,
        [
            f"ro = np.random.rand({N})\nro.flags.writeable = False",
            "print(ro.flags.writeable)",
            "ro[0] = 1.0",
            "cs(ro)",
        ],
    ),
    "views_and_in_place_writes": (
        False,
        [
            f"base = np.random.rand({N})\nview = base[1000:50000]",
            "base *= 2",
            "print(cs(view), cs(base))",
            "view[:] = 7",
            "print(cs(base))",
        ],
    ),
    "numpy_resize_in_place": (
        False,
        [
            f"grow = np.random.rand({N})",
            f"grow.resize(({2 * N},), refcheck=False)",
            "cs(grow)",
        ],
    ),
    "containers_and_aliases": (
        False,
        [
            f"a1 = np.random.rand({N})\nalias = a1\nbox = [a1, {{'k': a1}}]",
            "print(box[0] is a1, box[1]['k'] is alias, cs(box[0]))",
            "a1[5] = -1",
            "print(cs(alias))",
        ],
    ),
    "pandas_frame": (
        False,
        [
            "import pandas as pd",
            f"frame = pd.DataFrame(np.random.rand({N // 4}, 4), columns=list('abcd'))",
            "print(frame.sum().round(12).tolist())",
            "frame.loc[0, 'a'] = 5.0\nprint(frame.iloc[0].tolist()[0])",
        ],
    ),
    # -- code that uses a global the scanner cannot see --------------------------------
    "invisible_uses": (
        False,
        [
            f"hidden = np.random.rand({N})",
            "print(cs(globals()['hidden']), cs(eval('hidden')))",
            "print(sorted(k for k in globals() if k in ('hidden', 'nothere')))",
            "print('hidden' in dir())",
            "%who ndarray",
            "print(get_ipython().complete('hidd')[1])",
            "info = get_ipython().object_inspect('hidden')\n"
            "print(info['found'], info['type_name'], info['length'])",
        ],
    ),
    "decorated_function_uses_a_global": (
        False,
        [
            f"weights_a = np.random.rand({N})",
            "import functools\n"
            "def logged(f):\n    @functools.wraps(f)\n    def inner(*a):\n        return f(*a)\n"
            "    return inner\n"
            "@logged\ndef total():\n    return cs(weights_a)",
            "print(total(), total.__name__)",
        ],
    ),
    "generators_closures_threads": (
        False,
        [
            f"src = np.random.rand({N})",
            "def gen():\n    for i in range(3):\n        yield float(src[i])\n"
            "g = gen()\nprint(next(g))",
            "print(next(g))",
            "make = lambda: (lambda: cs(src))\nf = make()",
            "print(f())",
            "out = []\nth = threading.Thread(target=lambda: out.append(cs(src)))\nth.start()\n"
            "th.join()\nprint(out)",
        ],
    ),
    "shadowing_builtins_and_magics": (
        False,
        [
            f"input = np.random.rand({N})\nll = np.arange({N})",
            "print(type(input).__name__)",
            "ll[:3]",
        ],
    ),
    "class_redefinition_and_bound_methods": (
        False,
        [
            "class Box:\n    def __init__(self, n):\n        self.v = np.random.rand(n)\n"
            "    def total(self):\n        return cs(self.v)",
            f"b = Box({N})\nm = b.total\nOld = Box",
            "class Box:\n    pass",
            "print(type(b) is Old, m.__self__ is b, m())",
        ],
    ),
    "reset_forgets": (
        False,
        [
            f"gone = np.random.rand({N})\nkept_too = np.random.rand({N})",
            "%reset_selective -f ^gone$",
            "print('gone' in globals(), cs(kept_too))",
            "%reset -f",
            "print('kept_too' in globals())",
        ],
    ),
    "del_and_collect_frees_cycles": (
        False,
        [
            f"class Node:\n    pass\nn = Node()\nn.me = n\nn.v = np.random.rand({N})\n"
            "r = weakref.ref(n)",
            "cs(n.v)",
            "del n\nprint(gc.collect() > 0, r() is None)",
        ],
    ),
    "deep_object_graph_with_high_recursion_limit": (
        False,
        [
            "sys.setrecursionlimit(10**6)",
            f"deep = [np.random.rand({N})]\nfor _ in range(200000):\n    deep = [deep]",
            "d = deep\nwhile len(d) == 1 and isinstance(d[0], list):\n    d = d[0]\n"
            "print(cs(d[0]))",
            "sys.setrecursionlimit(3000)",
        ],
    ),
    # -- torch ----------------------------------------------------------------------------
    "tensor_views_numpy_sharing_resize": (
        True,
        [
            f"t = torch.randn({N})\nv = t[10:1000]\nshared_np = np.random.rand({N})\n"
            "shared_t = torch.from_numpy(shared_np)",
            "shared_np[0] = 42.0\nprint(float(shared_t[0]), cs(v))",
            "t.mul_(3)\nprint(cs(v))",
            f"grown = torch.zeros({N})",
            f"grown.resize_({2 * N})\nprint(grown.shape, cs(grown[:{N}]))",
            "print(shared_t.data_ptr() == shared_np.ctypes.data)",
        ],
    ),
    "model_and_adam_between_backward_and_step": (
        True,
        [
            "net = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), "
            "torch.nn.Linear(512, 10))\nopt = torch.optim.Adam(net.parameters(), lr=1e-3)\n"
            "inp = torch.randn(64, 256)\ntarget = torch.randint(0, 10, (64,))",
            "loss = torch.nn.functional.cross_entropy(net(inp), target)\nloss.backward()",
            "print([cs(p.grad) for p in net.parameters()][:2])",
            "opt.step()\nopt.zero_grad()",
            "for _ in range(3):\n    l = torch.nn.functional.cross_entropy(net(inp), target)\n"
            "    l.backward()\n    opt.step()\n    opt.zero_grad()\nprint(float(l))",
            "print([cs(p) for p in net.parameters()][:2], "
            "sorted(k for k in opt.state[next(net.parameters())]))",
        ],
    ),
    "non_leaf_tensor_and_hooks": (
        True,
        [
            f"w = torch.randn({N}, requires_grad=True)\nmid = w * 2\nseen = []\n"
            "handle = w.register_hook(lambda g: seen.append(cs(g)))",
            "print(mid.is_leaf, mid.grad_fn is not None, mid.requires_grad)",
            "mid.sum().backward()\nprint(cs(w.grad), seen)",
            "handle.remove()\nprint(w._version)",
        ],
    ),
}
