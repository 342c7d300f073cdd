"""The housekeeping engine: when to act (``hooks``, ``triggers``), what to keep
(``policy``), what to do (``housekeeping``, ``cleaner``, ``store``, ``budget``), what it
did (``stats``), the guard of a running cell (``guarding``), and the engine's face to
the frontends (``service``, ``views``). ``greed.Greed`` builds and wires the components.

Layer: above ``analysis``, ``memory`` and ``session``, which it may import; never
``frontends``.
"""
