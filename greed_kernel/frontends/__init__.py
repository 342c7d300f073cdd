"""How users and programs talk to the engine: the JSON-RPC comm (``protocol`` and its
schema, ``channel`` on the kernel side, ``client`` for Python), and the ``%greed``
magic (``magics``, ``render``).

Layer: the top wing. May import ``engine``, ``session``, ``memory`` and ``analysis``.
"""
