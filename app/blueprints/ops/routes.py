"""Operations API (API.md, Operations): factory workers, their statistics and a health verdict; backups."""
from __future__ import annotations

from flask import send_file

from app.extensions import db
from app.http.auth import current_actor, site_admin_required
from app.http.blueprint import ApiBlueprint
from app.services.ops import backups as backup_service
from app.services.ops import workers as worker_service

from .schemas import (BackupListSchema, BackupSchema, BackupStatsSchema, FactoryStatsSchema, FactoryWorkerListSchema,
                      HealthSummarySchema, StatsArgs)

workers_blp = ApiBlueprint("factory_workers", __name__, url_prefix="/api/factory-workers",
                           description="The build hosts and how the factory is doing (site administrators)")


def worker_list() -> dict:
    workers = worker_service.list_workers()
    online = sum(1 for w in workers if w.status == "online")
    return {"workers": workers, "total_count": len(workers), "online": online, "lost": len(workers) - online}


@workers_blp.route("", methods=["GET"])
@workers_blp.response(200, FactoryWorkerListSchema, description="Every registered worker, online ones first",
                      errors=(401, 403))
@site_admin_required
def list_workers():
    return worker_list()


@workers_blp.route("/stats", methods=["GET"])
@workers_blp.arguments(StatsArgs, location="query")
@workers_blp.response(200, FactoryStatsSchema, description="Queue depths, throughput, durations, failure rates",
                      errors=(400, 401, 403))
@site_admin_required
def stats(args):
    return worker_service.stats(args["hours"])


@workers_blp.route("/health-summary", methods=["GET"])
@workers_blp.response(200, HealthSummarySchema, description="ok, degraded or down, with what to look at",
                      errors=(401, 403))
@site_admin_required
def health_summary():
    return worker_service.health_summary()


backups_blp = ApiBlueprint("backups", __name__, url_prefix="/api/backups",
                           description="Database backups with an artifact manifest (site administrators)")


@backups_blp.route("", methods=["GET"])
@backups_blp.response(200, BackupListSchema, description="Every backup archive, newest first", errors=(401, 403))
@site_admin_required
def list_backups():
    rows = backup_service.list_backups()
    return {"backups": rows, "total_count": len(rows)}


@backups_blp.route("/stats", methods=["GET"])
@backups_blp.response(200, BackupStatsSchema, description="Count, size, newest and oldest, retention, schedule",
                      errors=(401, 403))
@site_admin_required
def backup_stats():
    return backup_service.stats()


@backups_blp.route("/trigger", methods=["POST"])
@backups_blp.response(201, BackupSchema, description="The archive just written (older ones beyond the retention "
                      "count are removed)", errors=(401, 403, 500, 503))
@site_admin_required
def trigger_backup():
    written = backup_service.create_backup(current_actor())
    db.session.commit()
    return written


@backups_blp.route("/<filename>/download", methods=["GET"])
@backups_blp.doc_errors(400, 401, 403, 404)
@backups_blp.alt_response(200, success=True, content_type="application/gzip", description="The tar.gz archive",
                          schema={"type": "string", "format": "binary"})
@site_admin_required
def download_backup(filename):
    return send_file(backup_service.path_of(filename), mimetype="application/gzip", as_attachment=True,
                     download_name=filename)


@backups_blp.route("/<filename>", methods=["DELETE"])
@backups_blp.response(204, description="Deleted", errors=(400, 401, 403, 404))
@site_admin_required
def delete_backup(filename):
    backup_service.delete_backup(current_actor(), filename)
    db.session.commit()
    return "", 204


api_blueprints = [workers_blp, backups_blp]
