"""Operations of the whole site (not of one organization): site administrators, factory workers, metrics,
backups and the host readiness check. Used by the ops blueprint, the CLI and the worker."""
