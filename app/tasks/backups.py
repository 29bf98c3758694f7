"""The scheduled backup: write one, apply the retention count, schedule the next."""
from __future__ import annotations

from flask import current_app

from app.extensions import db
from app.services.audit import Actor
from app.services.ops import backups


def run_scheduled_backup() -> str:
    try:
        written = backups.create_backup(Actor.system())
        db.session.commit()
        return written.filename
    finally:
        hours = float(current_app.config["KILN_BACKUP_INTERVAL_HOURS"])
        if hours > 0:
            backups.schedule_next(hours)
