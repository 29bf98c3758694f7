"""Operations: factory workers, backups, /metrics (site administrators only)."""
