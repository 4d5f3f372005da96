"""Log records that carry the function name and invocation id, and a terminal-friendly format."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

LOGGER_NAME = "minihost"
_function: contextvars.ContextVar[str] = contextvars.ContextVar("minihost_function", default="")
_invocation: contextvars.ContextVar[str] = contextvars.ContextVar("minihost_invocation", default="")

FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(function_name)s %(invocation_id)s] %(message)s"


def get_logger(suffix: str) -> logging.Logger:
    """The mini-host's logger for one component, e.g. "http" -> "minihost.http"."""
    return logging.getLogger(f"{LOGGER_NAME}.{suffix}")


@contextmanager
def invocation_scope(function_name: str, invocation_id: str) -> Iterator[None]:
    """Bind the function name and invocation id for every log record made inside."""
    function_token = _function.set(function_name)
    invocation_token = _invocation.set(invocation_id)
    try:
        yield
    finally:
        # A task the host's stop left pending is closed later, by the garbage collector, outside
        # the context it ran in (ValueError): there is nothing to restore there.
        with contextlib.suppress(ValueError):
            _invocation.reset(invocation_token)
            _function.reset(function_token)


def fields(function_name: str = "", invocation_id: str = "") -> dict[str, str]:
    """`extra=` for the host's own records, so tests and handlers see the fields without the filter."""
    return {"function_name": function_name, "invocation_id": invocation_id}


class InvocationFilter(logging.Filter):
    """Fills `function_name` / `invocation_id` on records made by user code inside an invocation."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "function_name", ""):
            record.function_name = _function.get() or "host"
        if not getattr(record, "invocation_id", ""):
            record.invocation_id = _invocation.get() or "-"
        return True


def configure_logging(level: str = "INFO") -> None:
    """Send every log record to stderr in the mini-host format (used by `python -m local.minihost`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    handler.addFilter(InvocationFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The Azure SDK and httpx log every request at INFO; polling and Graph calls would drown the useful lines.
    for noisy in ("azure", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
