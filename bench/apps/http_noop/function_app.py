"""Benchmark app: one anonymous HTTP function that reads the body and answers 202, nothing else.

The baseline for WaveGuard's HR ingress on the same mini-host: what an HTTP function costs before
it does any work (routing, the request and response objects, the event loop hop)."""

from __future__ import annotations

import azure.functions as func

app = func.FunctionApp()


@app.route(route="noop", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def noop(req: func.HttpRequest) -> func.HttpResponse:
    req.get_body()
    return func.HttpResponse('{"id": "noop"}', status_code=202, mimetype="application/json")
