"""Service-desk tickets as rollout evidence: the canonical ticket, the Jira adapter, their store and
the webhook ingress (``POST /api/helpdesk/tickets``, ``POST /api/helpdesk/jira``).

The contract: docs/architecture.md, 'Helpdesk tickets'. Like the HR ingress, nothing here imports
Graph: a ticket names its requester by UPN (or mail address), and the rollout timer attributes it
to a wave when it evaluates the gates.
"""

from __future__ import annotations
