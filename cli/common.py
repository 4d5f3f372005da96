"""What the `waveguard waves` commands share: exit codes, the error line, who acts, wave names."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Final

from shared.config import RolloutPlan, Settings
from shared.errors import NotFoundError
from shared.rollout.group_drift import GroupDrift

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "actor_of", "fail", "group_drift", "require_wave"]

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


def group_drift(settings: Settings, plan: RolloutPlan) -> list[GroupDrift]:
    """The wave groups the tenant names otherwise than the plan (``policies apply`` renames them).

    Raises:
        RetryableError / PermanentError: Graph or storage failed.
    """
    import asyncio

    from shared.graph import build_graph_client
    from shared.rollout.group_drift import wave_group_drift
    from shared.state import build_state

    kv = build_state(settings).aio.kv
    return asyncio.run(wave_group_drift(build_graph_client(settings), plan, kv))
