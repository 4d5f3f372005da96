"""The `wave-work` queue worker: membership sync chunks of a wave, resumable and applied once."""

from __future__ import annotations

import azure.functions as func

bp = func.Blueprint()
