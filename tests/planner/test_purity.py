"""The planner is a library beside the engine: no Flask, no database, no environment; settings come in."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PLANNER = Path(__file__).resolve().parents[2] / "app" / "planner"


@pytest.mark.parametrize("path", sorted(PLANNER.glob("*.py")), ids=lambda p: p.name)
def test_the_planner_imports_no_app_layer_and_reads_no_environment(path):
    tree = ast.parse(path.read_text())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0]
    assert not [m for m in imported if m.split(".")[0] in {"flask", "flask_smorest", "sqlalchemy", "rq", "redis"}
                or m.startswith(("app.services", "app.models", "app.blueprints", "app.http", "app.extensions"))]
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in {"environ", "getenv"}]
