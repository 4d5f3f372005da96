"""HR webhooks in: `POST /api/hr/events` (Standard Webhooks) and provider adapters; validate, enqueue, 202."""

from __future__ import annotations

import azure.functions as func

bp = func.Blueprint()
