"""Reads of the Graph emulator's admin API that several test tiers assert on (TAPs, never their values)."""

from __future__ import annotations

from typing import Any, Protocol


class _Admin(Protocol):
    def admin(self, method: str, path: str, body: Any = None) -> Any: ...


class TapProbe:
    """Mixin for a test's emulator wrapper that has ``admin(method, path, body=None)``."""

    def taps(self: _Admin, user_id: str) -> list[dict[str, Any]]:
        """Every TAP ever issued to the user (ids, times, sha256 of the secret)."""
        entries = self.admin("GET", f"/taps?userId={user_id}")["value"]
        return list(entries[0]["taps"]) if entries else []

    def active_tap_sha(self: _Admin, user_id: str) -> str | None:
        """The sha256 of the user's one usable TAP, or None."""
        entries = self.admin("GET", f"/taps?userId={user_id}")["value"]
        if not entries:
            return None
        active = entries[0]["activeId"]
        return next((t["secretSha256"] for t in entries[0]["taps"] if t["id"] == active), None)
