"""The local receiver sink: stands in for PagerDuty, Teams, Slack and generic webhooks (never deployed).

``make run`` starts it on port 7073, where ``local/local.settings.json`` points ``PAGERDUTY_URL``
(``/v2/enqueue``) and ``TEAMS_WEBHOOK_URL`` (``/teams``). It checks each delivery the way the real
service would, answers like it, enforces its rate limit, and records everything for people, tests
and benchmarks to read back. Run it alone with::

    python -m local.receiver_sink --port 7073 [--host 127.0.0.1] [--webhook-secret whsec_...]
        [--limit slack=3/1 | --limit webhook=off ...] [--max-body-bytes 1048576] [--quiet]

or in-process (tests, benchmarks)::

    sink = start_sink(port=0)          # a free port; a daemon thread serves it
    sink.url                           # http://127.0.0.1:<port>; also .pagerduty_url, .teams_url ...
    sink.events(kind="pagerduty")      # the same shapes as the admin API below
    sink.incidents(); sink.stats(); sink.violations()
    sink.fail(503, 30, kind="teams"); sink.end_failures(); sink.clear()
    sink.stop()                        # or use it as a context manager

Receivers (POST only; anything else on these paths is 405)
-----------------------------------------------------------
``POST /v2/enqueue`` — PagerDuty Events API v2. A JSON event: ``routing_key`` (32 characters),
``event_action`` ``trigger`` | ``acknowledge`` | ``resolve``, ``dedup_key`` (at most 255 characters;
required to acknowledge or resolve); a trigger needs ``payload.summary`` (at most 1,024 characters),
``payload.source`` and ``payload.severity`` (``critical`` | ``error`` | ``warning`` | ``info``).
Valid: ``202 {"status": "success", "message": "Event processed", "dedup_key": ...}`` (a trigger
without a dedup_key gets a generated one). Invalid: ``400 {"status": "invalid event", "message":
"Event object is invalid", "errors": ["Length of 'routing_key' is incorrect (should be 32
characters)", ...]}``. Accepted events drive the incident view (below).

``POST /teams`` and ``/teams/<anything>`` — a Teams Workflows webhook: ``{"type": "message",
"attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": {"type":
"AdaptiveCard", "body": [...]}}]}`` (every attachment an Adaptive Card). Valid: 202, empty body.
Invalid: ``400 {"error": {"code": "InvalidRequestContent", "message": ...}}``.

``POST /slack`` and ``/slack/<anything>`` — a Slack incoming webhook: a JSON object with a non-blank
``text`` or a non-empty ``blocks`` array (blocks are objects with a ``type``). Valid: ``200 ok``
(text/plain). Invalid: ``400 invalid_payload``.

``POST /webhook`` and ``/webhook/<anything>`` — a generic (Standard Webhooks) receiver: any body,
``200 {"status": "ok"}``. The ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``
headers are recorded. Started with ``--webhook-secret whsec_...`` (repeatable, for rotation), the
signature and timestamp (5-minute tolerance) are verified: a failure answers ``401 {"error": ...}``;
the recorded event's ``signature`` is ``valid`` | ``invalid`` | ``unchecked`` (no secret).

Deciding a delivery, in order
-----------------------------
1. Body over ``--max-body-bytes`` (1 MB): 413.
2. An injected failure for its kind (or for all kinds) is active: that status (``Retry-After`` when
   the failure has one; an injected 429 sends ``Retry-After: 1`` unless told otherwise).
3. Over its kind's rate rule: 429 with ``Retry-After`` (whole seconds until the window has room), and
   a violation is recorded. Rules are sliding windows counting the deliveries admitted so far (a
   refused delivery does not count), per target (PagerDuty: per ``routing_key``; the others: per
   URL path):

   - PagerDuty: 120 events per 60 s per routing key.
   - Teams: 4 per 1 s per webhook.
   - Slack: 1 per 1 s per webhook. Slack documents one message per second and tolerates short
     bursts without guaranteeing them; the sink is strict, so any second message within 1 s is a
     violation (``--limit slack=N/SECONDS`` relaxes it).
   - Webhook: none.
4. Invalid for its kind: 400 (401 for a webhook signature).
5. Accepted: 202 (PagerDuty, Teams) or 200 (Slack, webhook).

Every delivery, whatever the answer, is recorded as::

    {"seq": 7, "receivedAt": "2026-01-05T10:00:00.123Z", "kind": "pagerduty|teams|slack|webhook",
     "path": "/teams/ops", "status": 202,
     "outcome": "accepted|invalid|unauthorized|rateLimited|failed|tooLarge",
     "headers": {"content-type": ..., "user-agent": ..., "webhook-id": ..., ...},
     "body": <parsed JSON, or the text, or null when empty or too large>,
     "errors": [...]            # invalid or unauthorized only
     "signature": "valid"       # webhook only
     "bodyBytes": 2000000}      # tooLarge only

``path`` drops the query string (Workflows URLs carry their signature there) and ``headers`` keep a
safe subset (content-type, content-length, transfer-encoding, user-agent, the three webhook-*
headers, traceparent, x-request-id): never authorization or cookies. ``seq`` counts up for the
sink's lifetime (a clear does not reset it, so ``since`` cursors stay valid). The newest 100,000
events are kept; ``droppedEvents`` in the stats counts the rest.

Admin API (``/_sink``)
----------------------
``GET /_sink`` — ``{"status": "ok", "kinds": [...], "lastSeq": n}``.

``GET /_sink/events[?kind=pagerduty][&since=<seq>]`` — ``{"value": [event, ...]}``, oldest first,
only ``seq > since``. ``DELETE /_sink/events`` — 204; forgets everything: events, incidents, counts,
windows, violations and injected failures.

``GET /_sink/incidents[?status=triggered|acknowledged|resolved]`` — ``{"value": [incident, ...]}``
oldest first, each::

    {"number": 1, "routingKey": ..., "dedupKey": ..., "status": "triggered|acknowledged|resolved",
     "summary": ..., "severity": ..., "source": ..., "firstEventAt": ..., "lastEventAt": ...,
     "acknowledgedAt": null, "resolvedAt": null,
     "eventCounts": {"trigger": 2, "acknowledge": 0, "resolve": 0}, "eventCount": 2}

One incident per open (routing_key, dedup_key): a trigger opens one or adds to the open one (an
acknowledged incident stays acknowledged); acknowledge and resolve act on the open one and are
ignored (still 202, counted as ``ignoredActions``) when there is none; a trigger after a resolve
opens a new incident with the same dedup_key.

``GET /_sink/stats`` —::

    {"kinds": {"pagerduty": {"received": 3, "accepted": 2, "invalid": 1, "unauthorized": 0,
                             "rateLimited": 0, "failed": 0, "tooLarge": 0}, ...},
     "targets": [{"kind": "slack", "target": "/slack/ops", "deliveries": 5, "max1s": 2,
                  "max60s": 5, "rule": {"limit": 1, "windowSeconds": 1.0}}, ...],
     "violationCount": 1,
     "violations": [{"seq": 9, "at": ..., "kind": "slack", "target": "/slack/ops", "limit": 1,
                     "windowSeconds": 1.0, "retryAfterSeconds": 0.42}],
     "pagerduty": {"incidents": 1, "triggered": 0, "acknowledged": 0, "resolved": 1,
                   "ignoredActions": 0},
     "rules": {"pagerduty": {"limit": 120, "windowSeconds": 60.0}, ..., "webhook": null},
     "recordedEvents": 12, "droppedEvents": 0, "lastSeq": 12,
     "failures": [active failure, ...]}

``max1s`` / ``max60s`` are the most deliveries (every one, refused or not) the target saw in any
1-s / 60-s window; a benchmark asserts ``violationCount == 0`` and ``max60s <= 120`` per routing key.

``POST /_sink/fail`` ``{"status": 503, "seconds": 30, "kind": "pagerduty", "retryAfter": 5}`` —
``status`` one of 429, 500, 502, 503, 504; ``seconds`` a number > 0 and <= 3600; ``kind`` optional
(absent or null: every kind; a kind's own failure wins over the all-kinds one); ``retryAfter``
optional whole seconds. Replaces the failure for that kind; answers ``200 {"value": [{"kind": ...,
"status": 503, "until": ..., "remainingSeconds": 29.99, "matched": 0}]}`` (the active failures;
``matched`` counts the deliveries it answered). Those deliveries are recorded with outcome
``failed``. ``GET /_sink/fail`` lists the active failures; ``DELETE /_sink/fail[?kind=...]`` ends
them all (or one kind's) and lists what remains.

A bad admin request answers ``400 {"error": {"field": "seconds", "message": ...}}`` naming the body
field or query parameter; a wrong method 405; an unknown path 404; a body over the limit 413.
"""

from __future__ import annotations

from local.receiver_sink.limits import DEFAULT_RULES, KINDS, RateRule
from local.receiver_sink.server import MAX_BODY_BYTES, SinkHandle, start_sink
from local.receiver_sink.state import FAIL_STATUSES, AdminError, FailRule, SinkState

__all__ = [
    "DEFAULT_RULES",
    "FAIL_STATUSES",
    "KINDS",
    "MAX_BODY_BYTES",
    "AdminError",
    "FailRule",
    "RateRule",
    "SinkHandle",
    "SinkState",
    "start_sink",
]
