"""The mini-host's exceptions: one root, three kinds, each message says what was found and what was expected.

MiniHostError
├── ConfigError    a settings file (host.json, local.settings.json) or a host argument is wrong
├── AppLoadError   the app module or attribute cannot be imported, or it is not a FunctionApp
└── BindingError   a function uses a trigger, binding, route template or schedule the host cannot serve
"""

from __future__ import annotations


class MiniHostError(Exception):
    """Root of every error the mini-host raises on purpose."""


class ConfigError(MiniHostError):
    """A settings file or argument holds a missing or invalid value."""


class AppLoadError(MiniHostError):
    """The function app could not be imported or read."""


class BindingError(MiniHostError):
    """A function declares something the mini-host cannot run."""
