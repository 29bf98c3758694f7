"""The operations settings are checked when the app starts: a bad value names itself."""
from __future__ import annotations

import pytest

from app.config import load_config


def test_bad_operations_settings_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="KILN_BACKUP_KEY must be a Fernet key"):
        load_config(tmp_path, {"SECRET_KEY": "x", "KILN_BACKUP_KEY": "not-a-key"})
    with pytest.raises(ValueError, match=r"KILN_WORKER_LOST_AFTER \(5\) must be longer than KILN_WORKER_HEARTBEAT_INTERVAL \(10\)"):
        load_config(tmp_path, {"SECRET_KEY": "x", "KILN_WORKER_LOST_AFTER": "5"})
    with pytest.raises(ValueError, match="KILN_BACKUP_KEEP must be greater than 0"):
        load_config(tmp_path, {"SECRET_KEY": "x", "KILN_BACKUP_KEEP": "0"})
    config = load_config(tmp_path, {"SECRET_KEY": "x"})
    assert config["KILN_BACKUP_DIR"] == str(tmp_path / "backups") and config["KILN_BACKUP_KEY"] == ""
