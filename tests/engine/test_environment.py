"""The engine is a library: its settings come in as arguments (STYLE.md habit 14); only its edges read
the environment."""
from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "app" / "engine"

# Exactly these may touch os.environ, each for a reason:
ALLOWED = {
    # The command lines are the edge: they build EngineSettings / VMSettings from their own environment.
    "cli.py",
    "testing/cli.py",
    # Child processes inherit the caller's environment (PATH, locale) unless asked not to; nothing is read
    # from it as a setting.
    "process.py",
    "userns.py",
}


def _reads_environment(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    attributes = any(isinstance(n, ast.Attribute) and n.attr in {"environ", "environb", "getenv"}
                     for n in ast.walk(tree))
    imported = any(isinstance(n, ast.ImportFrom) and n.module == "os"
                   and any(a.name in {"environ", "environb", "getenv"} for a in n.names) for n in ast.walk(tree))
    return attributes or imported


def test_only_the_engines_edges_read_the_environment():
    readers = {str(p.relative_to(ENGINE)) for p in sorted(ENGINE.rglob("*.py")) if _reads_environment(p)}
    assert readers == ALLOWED
