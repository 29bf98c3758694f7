"""Operations API (API.md, Operations): factory workers, their statistics and a health verdict."""
from __future__ import annotations

from app.http.auth import site_admin_required
from app.http.blueprint import ApiBlueprint
from app.services.ops import workers as worker_service

from .schemas import FactoryStatsSchema, FactoryWorkerListSchema, HealthSummarySchema, StatsArgs

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


api_blueprints = [workers_blp]
