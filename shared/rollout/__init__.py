"""Wave plan, wave assignment, promotion gates, the CA policy baseline and its safety lint."""

from __future__ import annotations
