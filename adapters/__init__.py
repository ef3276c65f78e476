"""Bridges between losszoo and third-party libraries.

Nothing is registered on import: each adapter exposes a ``register()`` hook, declared as an
entry point of the ``losszoo.losses`` group, which the loss registry calls on first read.
"""
