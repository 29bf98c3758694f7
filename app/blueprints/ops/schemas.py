"""Operations on the wire (the schemas dump the services' results)."""
from __future__ import annotations

from marshmallow import fields, validate

from app.http.schemas import CamelSchema, QueryArgs, Timestamp


class CapabilitiesSchema(CamelSchema):
    formats = fields.List(fields.String())
    accel = fields.String(metadata={"description": "kvm, or tcg when the host has no usable KVM"})
    cores = fields.Integer()
    disk_free_bytes = fields.Integer()
    data_dir = fields.String()


class FactoryWorkerSchema(CamelSchema):
    name = fields.String()
    hostname = fields.String()
    pid = fields.Integer()
    queues = fields.List(fields.String())
    version = fields.String()
    capabilities = fields.Nested(CapabilitiesSchema)
    started_at = Timestamp()
    last_heartbeat_at = Timestamp()
    seconds_since_heartbeat = fields.Float()
    status = fields.String(metadata={"description": "online | lost (no heartbeat for KILN_WORKER_LOST_AFTER s)"})
    active_builds = fields.List(fields.String(), metadata={"description": "Ids of the builds it runs now"})


class FactoryWorkerListSchema(CamelSchema):
    workers = fields.List(fields.Nested(FactoryWorkerSchema))
    total_count = fields.Integer()
    online = fields.Integer()
    lost = fields.Integer()


class StatsArgs(QueryArgs):
    hours = fields.Integer(load_default=24, validate=validate.Range(min=1, max=24 * 90),
                           metadata={"description": "The window the rates and means cover (1..2160 hours)"})


class FactoryStatsSchema(CamelSchema):
    window_hours = fields.Integer()
    queue_depths = fields.Dict(keys=fields.String(), values=fields.Integer())
    builds_by_status = fields.Dict(keys=fields.String(), values=fields.Integer(),
                                   metadata={"description": "Every build by its status now (all time)"})
    builds_finished = fields.Integer()
    jobs_per_hour = fields.Float()
    mean_build_seconds = fields.Float(allow_none=True)
    mean_test_seconds = fields.Float(allow_none=True)
    failures_by_class = fields.Dict(keys=fields.String(), values=fields.Integer())
    failure_rate_by_class = fields.Dict(keys=fields.String(), values=fields.Float(),
                                        metadata={"description": "Failed builds of the class / ended builds"})


class HealthSummarySchema(CamelSchema):
    status = fields.String(metadata={"description": "ok | degraded | down"})
    workers_online = fields.Integer()
    workers_lost = fields.Integer()
    queue_depths = fields.Dict(keys=fields.String(), values=fields.Integer())
    oldest_queued_seconds = fields.Float(allow_none=True)
    problems = fields.List(fields.String())


class BackupSchema(CamelSchema):
    filename = fields.String()
    size = fields.Integer()
    created_at = Timestamp()


class BackupListSchema(CamelSchema):
    backups = fields.List(fields.Nested(BackupSchema))
    total_count = fields.Integer()


class BackupStatsSchema(CamelSchema):
    count = fields.Integer()
    total_bytes = fields.Integer()
    latest = fields.Nested(BackupSchema, allow_none=True)
    oldest = fields.Nested(BackupSchema, allow_none=True)
    keep = fields.Integer(metadata={"description": "How many backups are kept (KILN_BACKUP_KEEP)"})
    interval_hours = fields.Float(metadata={"description": "The schedule (KILN_BACKUP_INTERVAL_HOURS; 0: none)"})
    next_scheduled_at = Timestamp(allow_none=True)
    encrypted = fields.Boolean(metadata={"description": "Whether KILN_BACKUP_KEY is set (backups need it)"})
