"""What the `waveguard waves` commands share: exit codes, the error line, who acts, wave names."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Final

from shared.config import RolloutPlan
from shared.errors import NotFoundError

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "actor_of", "fail", "require_wave"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2


def fail(message: str, code: int = EXIT_FAILED) -> int:
    """Print ``error: message`` on stderr; returns ``code`` for the command to exit with."""
    print(f"error: {message}", file=sys.stderr)
    return code


def actor_of(env: Mapping[str, str]) -> str:
    """The operator as the audit log names them: ``cli:<user>``."""
    return f"cli:{env.get('USER') or env.get('USERNAME') or 'operator'}"


def require_wave(plan: RolloutPlan, wave: str) -> None:
    """Raises NotFoundError naming the plan's waves when ``wave`` is not one of them."""
    names = [w.name for w in plan.waves]
    if wave not in names:
        raise NotFoundError(f"wave {wave!r} is not in the plan (waves: {', '.join(names)})", field="wave")
