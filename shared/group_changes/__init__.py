"""Group changes: Graph change notifications on the groups that decide who is protected.

``notifications`` is the HTTP ingress (validation handshake, ``clientState``, enqueue on
``group-changes``); it never imports Graph.
"""
