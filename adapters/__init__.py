"""Bridges between losszoo and third-party libraries.

Nothing is registered on import: each adapter exposes a ``register()`` hook, declared as an
entry point of the ``losszoo.losses.namespaces`` group under its prefix (``pml``), which the
loss registry calls when a name with that prefix is first asked for.
"""
