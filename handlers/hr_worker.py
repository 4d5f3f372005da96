"""The `hr-events` queue worker: hires, updates and terminations, applied exactly once."""

from __future__ import annotations

import azure.functions as func

bp = func.Blueprint()
