"""The ``alerts`` queue worker: alerts in, routed and grouped; flushes out to the receivers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from shared.alerting.flush import flush_group
from shared.alerting.model import ALERT_ENVELOPE_TYPE, Alert
from shared.alerting.receivers import Delivery
from shared.alerting.router import ACTOR, FLUSH_TYPE, RouterDeps, parse_flush, route_alert
from shared.envelope import Envelope
from shared.errors import PermanentError
from shared.pipeline import QueueWorker, Routes, Settlement

if TYPE_CHECKING:
    from shared.services import Services

__all__ = ["ALERT_ROUTER_WORKER", "alert_routes", "router_deps", "settle"]


def alert_routes(deps: RouterDeps) -> Routes:
    """``alert`` → ``route_alert``; ``alert.flush`` → ``flush_group``."""

    async def routed(envelope: Envelope) -> object:
        return await route_alert(deps, Alert.from_dict(envelope.payload), correlation_id=envelope.id)

    async def flushed(envelope: Envelope) -> object:
        return await flush_group(deps, parse_flush(envelope), correlation_id=envelope.id)

    return {ALERT_ENVELOPE_TYPE: routed, FLUSH_TYPE: flushed}


def settle(error: PermanentError, envelope: Envelope | None) -> Settlement:
    """A permanent routing failure (a bad alert, a receiver that refuses): one high alert about it.

    Its key differs from every routed alert's, and a refusing receiver's own alert goes to the other
    receivers the tree names for ``AlertRoutingFailed``.
    """
    envelope_id = envelope.id if envelope is not None else "unparseable"
    return Settlement(
        action="alert.routing.failed",
        target=envelope_id,
        alertname="AlertRoutingFailed",
        severity="high",
        alert_key=f"alert-router:{type(error).__name__}:{envelope_id}",
    )


def router_deps(services: Services) -> RouterDeps:
    """The router over the services: plan alerting, state, queues, HTTP receivers, Graph for e-mail."""

    async def send_mail(sender: str, to: list[str], subject: str, text: str) -> None:
        from shared.graph.mail import MailMessage
        from shared.graph.mail import send_mail as graph_send_mail

        await graph_send_mail(services.graph(), sender, MailMessage(subject=subject, body=text, to=to))

    return RouterDeps(
        services.plan.alerting, services.state, services.queues, Delivery(send_mail=send_mail), services.clock
    )


# The ``alerts`` worker as the trigger runs it.
ALERT_ROUTER_WORKER: Final = QueueWorker(
    actor=ACTOR, routes=lambda services: alert_routes(router_deps(services)), settle=settle
)
