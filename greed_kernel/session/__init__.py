"""What outlives one kernel: which notebook a kernel belongs to (``identity``), and the
record each kernel keeps of itself, which the next kernel of the notebook reads if this
one died (``record`` writes it, with the fatal-signal sidecar of ``faults``;
``previous`` reads it back and prunes; ``files`` holds the private directory and the
safe reads they use); and the notebook's checkpoints (``blobs`` on disk, ``pickling``
of one stream, ``manifests``, and ``checkpoints``, which writes them incrementally and
reads one back).

Layer: above ``analysis`` and ``memory``, which it may import; never ``engine``,
``frontends`` or the kernel.
"""
