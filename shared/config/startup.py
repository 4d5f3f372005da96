"""Configuration checked at first use, not at import: a broken setting never stops the app loading."""

from __future__ import annotations

import logging
from collections.abc import Callable

from shared.errors import ConfigError, RetryableError

__all__ = ["build_or_retry"]

log = logging.getLogger(__name__)


def build_or_retry[T](build: Callable[[], T], *, what: str) -> T:
    """``build()``; an invalid setting or plan becomes a ``RetryableError``, so the queue message
    (or the timer's next tick) waits for the fix instead of being settled as failed.

    Raises:
        RetryableError: the settings or the plan are invalid (the message names the variables).
    """
    try:
        return build()
    except ConfigError as exc:
        log.error("%s cannot start: invalid configuration: %s", what, "; ".join(exc.problems))
        raise RetryableError(
            f"{what} cannot start: invalid configuration ({'; '.join(exc.problems)})", file=exc.file
        ) from exc
