"""Kiln build engine: recipe in, artifacts + log lines + progress events out (no Flask here)."""
