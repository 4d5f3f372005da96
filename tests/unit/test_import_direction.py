"""Packages depend one way. Every import is read from the source (module level and inside functions):

- nothing under ``shared/`` imports ``handlers``, ``cli`` or ``local`` (the app's code never reaches up);
- ``shared/rollout`` never imports ``shared/onboarding`` (onboarding calls the rollout, not back);
- the HTTP ingress (its handlers, ``shared/hr``, ``shared/helpdesk``,
  ``shared/group_changes/notifications.py``) never imports ``msgraph`` or ``shared.graph``, not even
  lazily: it must answer within a sender's timeout on a cold start.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                yield node.lineno, ".".join([*base, node.module or ""]).rstrip(".")
            elif node.module:
                yield node.lineno, node.module


def _violations(files: list[Path], forbidden: tuple[str, ...], root: Path = ROOT) -> list[str]:
    found = []
    for path in files:
        for line, module in _imports(path, root):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(root)}:{line} imports {module}")
    return found


def _py(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_shared_never_imports_the_layers_above_it() -> None:
    assert _violations(_py("shared"), ("handlers", "cli", "local", "function_app", "bench", "tests")) == []


def test_rollout_never_imports_onboarding() -> None:
    assert _violations(_py("shared/rollout"), ("shared.onboarding",)) == []


def test_the_http_ingress_never_imports_graph() -> None:
    ingress = [
        ROOT / "handlers" / "hr_ingress.py",
        ROOT / "handlers" / "helpdesk_ingress.py",
        ROOT / "handlers" / "graph_notifications.py",
        *_py("shared/hr"),
        *_py("shared/helpdesk"),
        ROOT / "shared" / "group_changes" / "__init__.py",
        ROOT / "shared" / "group_changes" / "notifications.py",
    ]
    assert _violations(ingress, ("msgraph", "msgraph_core", "kiota_abstractions", "shared.graph")) == []


@pytest.mark.parametrize(
    ("source", "forbidden", "expected"),
    [
        ("from shared.onboarding.deps import Deps\n", ("shared.onboarding",), 1),
        ("def f():\n    import handlers.hr_worker\n", ("handlers",), 1),
        ("from . import deps\n", ("shared.onboarding",), 0),  # relative, inside shared/rollout
        ("from shared.onboarding_helpers import x\n", ("shared.onboarding",), 0),  # a prefix is not a package
    ],
)
def test_the_checker_sees_what_it_must(
    tmp_path: Path, source: str, forbidden: tuple[str, ...], expected: int
) -> None:
    module = tmp_path / "shared" / "rollout" / "probe.py"
    module.parent.mkdir(parents=True)
    module.write_text(source, encoding="utf-8")
    assert len(_violations([module], forbidden, root=tmp_path)) == expected
