"""The rollout schedule: a timer that evaluates wave gates, promotes or holds, and nudges."""

from __future__ import annotations

import azure.functions as func

bp = func.Blueprint()
