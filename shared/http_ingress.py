"""An HTTP request and answer as WaveGuard's ingress logic sees them, independent of Azure Functions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.http_problem import PROBLEM_CONTENT_TYPE

__all__ = ["IncomingRequest", "IngressResult"]


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """An HTTP request; header names are matched case-insensitively, ``query`` is URL-decoded."""

    method: str
    headers: Mapping[str, str]
    body: bytes
    query: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", {k.lower(): v for k, v in self.headers.items()})


@dataclass(frozen=True, slots=True)
class IngressResult:
    """The HTTP answer: status, JSON body (problem JSON for errors) or plain ``text``, extra headers."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None

    @property
    def content_type(self) -> str:
        """``text/plain`` for ``text``, ``application/problem+json`` for errors, else ``application/json``."""
        if self.text is not None:
            return "text/plain"
        return PROBLEM_CONTENT_TYPE if self.status >= 400 else "application/json"

    def body_text(self) -> str:
        """The body: ``text`` as it is, else compact JSON."""
        if self.text is not None:
            return self.text
        return json.dumps(self.body, separators=(",", ":"))
