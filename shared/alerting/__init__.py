"""Alert model, the routing tree, dedupe / grouping / silences, and the receivers."""

from __future__ import annotations
