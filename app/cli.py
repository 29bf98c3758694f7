"""`flask kiln ...`: the engine's own CLI (build, validate, test), run with the app's data directory."""
from __future__ import annotations

import os


def register_cli(app) -> None:
    # The engine reads its settings from the environment; give it the app's data dir so the CLI
    # and the workers share one cache.
    os.environ.setdefault("KILN_DATA_DIR", app.config["KILN_DATA_DIR"])
    from app.engine.cli import kiln

    app.cli.add_command(kiln)
