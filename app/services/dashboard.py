"""What the dashboard shows: true counts of what the caller can see in the org, the builds that need a
person, recent activity from the audit log, and the numbers behind the charts. Reads only."""
from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from statistics import median

from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditRecord, Build, BuildArtifact, Conversation, Membership, User
from app.models.base import utcnow
from app.services.builds import reads as build_reads
from app.services import charts
from app.services.builds.views import human_duration
from app.services.access import visible_conversations
from app.services.audit import Actor
from app.services.permissions import role_allows

IMAGE_KINDS = ("iso", "qcow2", "rootfs", "oci")
RUNNING = ("queued", "building", "testing")
CHART_DAYS = 30
ACTIVITY_LIMIT = 12
ATTENTION_LIMIT = 6


def _count(query) -> int:
    return db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0


def summary(org, *, actor: Actor, role: str, now=None) -> dict:
    now = now or utcnow()
    week_ago = now - timedelta(days=7)
    builds = build_reads.list_builds(org, actor=actor, role=role)
    visible_ids = builds.order_by(None).with_only_columns(Build.id)

    week = dict.fromkeys(charts.STATUS_GROUPS, 0)
    for status, count in db.session.execute(
            select(Build.status, func.count()).where(Build.id.in_(visible_ids), Build.created_at >= week_ago)
            .group_by(Build.status)):
        week[charts.GROUP_OF.get(status, "running")] += count

    images_ready = db.session.scalar(
        select(func.count(func.distinct(BuildArtifact.build_id)))
        .join(Build, Build.id == BuildArtifact.build_id)
        .where(Build.id.in_(visible_ids), Build.status == "succeeded", BuildArtifact.kind.in_(IMAGE_KINDS))) or 0

    running = list(db.session.scalars(builds.where(Build.status.in_(RUNNING)).limit(ATTENTION_LIMIT)))
    failed = list(db.session.scalars(builds.where(Build.status == "failed", Build.created_at >= week_ago)
                                     .limit(ATTENTION_LIMIT)))
    last_finished = db.session.scalars(
        builds.where(Build.status.in_(("succeeded", "failed", "cancelled"))).limit(1)).first()

    days = [(now - timedelta(days=n)).date() for n in range(CHART_DAYS - 1, -1, -1)]
    since = now - timedelta(days=CHART_DAYS)
    rows = db.session.execute(select(Build.created_at, Build.status)
                              .where(Build.id.in_(visible_ids), Build.created_at >= since)).all()

    members = db.session.scalar(select(func.count()).select_from(Membership).where(Membership.org_id == org.id))
    return {
        "members": members,
        "conversations": _count(visible_conversations(org, user=actor.user, role=role,
                                                      via_api_key=actor.api_key is not None)),
        "builds_total": _count(builds),
        "builds_week": week,
        "builds_week_total": sum(week.values()),
        "images_ready": images_ready,
        "running": running,
        "failed": failed,
        "last_finished": last_finished,
        "per_day": charts.day_counts(rows, days),
        "activity": activity(org, actor=actor, role=role),
    }


def _visible(entity_type: str, ids: set, actor: Actor, role: str, org) -> set:
    """Which of these conversation/build ids the caller may see (their names appear in the activity)."""
    if not ids:
        return set()
    if entity_type == "conversation":
        query = visible_conversations(org, user=actor.user, role=role, via_api_key=actor.api_key is not None)
        column = Conversation.id
    else:
        query = build_reads.list_builds(org, actor=actor, role=role).order_by(None)
        column = Build.id
    rows = db.session.scalars(query.with_only_columns(column).where(column.in_(list(ids))))
    return {str(row) for row in rows}


# Actions about the org itself (members, keys, structure) are shown to people who manage it.
_ADMIN_ENTITIES = {"api_key", "member", "invitation", "organization", "unit", "team", "group"}


def activity(org, *, actor: Actor, role: str, limit: int = ACTIVITY_LIMIT) -> list[dict]:
    """The latest audit records of the org this caller may see, each as one sentence."""
    import uuid

    query = (select(AuditRecord).where(AuditRecord.org_id == org.id, AuditRecord.action != "user.login")
             .order_by(AuditRecord.created_at.desc(), AuditRecord.id.desc()).limit(limit * 4))
    if not role_allows(role, "members:manage"):
        query = query.where(AuditRecord.entity_type.not_in(_ADMIN_ENTITIES))
    records = list(db.session.scalars(query))
    wanted = defaultdict(set)
    for record in records:
        if record.entity_type in ("conversation", "build") and record.entity_id:
            try:
                wanted[record.entity_type].add(uuid.UUID(str(record.entity_id)))
            except ValueError:
                continue
    allowed = {kind: _visible(kind, ids, actor, role, org) for kind, ids in wanted.items()}
    names = _conversation_names(allowed.get("conversation", set()))
    numbers = _build_numbers(allowed.get("build", set()))
    people = _people({r.actor_user_id for r in records if r.actor_user_id})
    shown = []
    for record in records:
        entity = str(record.entity_id) if record.entity_id else None
        if record.entity_type in ("conversation", "build") and entity not in allowed.get(record.entity_type, set()):
            continue
        if record.action == "recipe.version_created" and (record.details or {}).get("source") == "initial":
            continue  # every new conversation starts with version 1; "started the conversation" says it
        text = _sentence(record, names.get(entity), numbers.get(entity))
        if text is None:
            continue
        shown.append({"at": record.created_at, "who": people.get(record.actor_user_id, "Kiln"),
                      "text": text, "entity_type": record.entity_type, "entity_id": entity})
        if len(shown) >= limit:
            break
    return shown


def _conversation_names(ids: set) -> dict:
    if not ids:
        return {}
    import uuid

    rows = db.session.execute(select(Conversation.id, Conversation.name)
                              .where(Conversation.id.in_([uuid.UUID(i) for i in ids])))
    return {str(cid): name for cid, name in rows}


def _build_numbers(ids: set) -> dict:
    if not ids:
        return {}
    import uuid

    rows = db.session.execute(select(Build.id, Build.number).where(Build.id.in_([uuid.UUID(i) for i in ids])))
    return {str(bid): number for bid, number in rows}


def _people(ids: set) -> dict:
    if not ids:
        return {}
    return {uid: name for uid, name in db.session.execute(select(User.id, User.name).where(User.id.in_(ids)))}


_WORDS = {
    "conversation.created": "started the conversation “{name}”",
    "conversation.renamed": "renamed a conversation to “{name}”",
    "conversation.deleted": "deleted the conversation “{name}”",
    "conversation.message_posted": "wrote in “{name}”",
    "conversation.shared": "shared “{name}”",
    "conversation.unshared": "stopped sharing “{name}”",
    "recipe.version_created": "saved recipe version {version} of “{name}”",
    "build.queued": "queued build #{number}",
    "build.cancelled": "cancelled build #{number}",
    "build.retried": "retried build #{number}",
    "build.retry_scheduled": "Kiln scheduled a retry of build #{number}",
    "build.deleted": "deleted build #{number}",
    "build.tests_requested": "asked for custom tests on build #{number}",
    "api_key.created": "created the API key “{key}”",
    "api_key.revoked": "revoked the API key “{key}”",
    "api_key.deleted": "deleted the API key “{key}”",
    "api_key.rotated": "rotated the API key “{key}”",
    "api_key.rolled": "rolled the API key “{key}”",
    "member.added": "added a member",
    "member.role_changed": "changed a member's role",
    "member.left": "left the organization",
    "invitation.created": "invited {email}",
    "invitation.accepted": "accepted an invitation",
    "unit.created": "created the unit “{uname}”",
    "team.created": "created the team “{uname}”",
    "group.created": "created the group “{uname}”",
    "organization.created": "created the organization",
    "organization.renamed": "renamed the organization",
}


def _sentence(record: AuditRecord, conversation_name: str | None, build_number: int | None) -> str | None:
    template = _WORDS.get(record.action)
    if template is None:
        return None
    details = record.details or {}
    values = {
        "name": conversation_name or details.get("name") or details.get("after") or "a conversation",
        "version": details.get("version", "?"),
        "number": build_number if build_number is not None else details.get("number", "?"),
        "key": details.get("name", "a key"),
        "email": details.get("email", "someone"),
        "uname": details.get("name", ""),
    }
    if record.action == "conversation.renamed":
        values["name"] = details.get("after") or values["name"]
    return template.format(**values)


def recipe_durations(org, *, actor: Actor, role: str, per_recipe: int = 12, recipes: int = 8) -> list[dict]:
    """For the builds list: each recipe name's recent finished builds (oldest first) and their durations."""
    finished = (build_reads.list_builds(org, actor=actor, role=role).order_by(None)
                .where(Build.status.in_(("succeeded", "failed")), Build.started_at.is_not(None),
                       Build.finished_at.is_not(None))
                .order_by(Build.finished_at.desc()).limit(per_recipe * recipes * 4))
    by_name: dict[str, list] = {}
    for build in db.session.scalars(finished):
        points = by_name.setdefault(build.name, [])
        if len(points) < per_recipe:
            points.append(((build.finished_at - build.started_at).total_seconds(), build.status))
    trends = []
    for name, points in list(by_name.items())[:recipes]:
        points.reverse()
        succeeded = [seconds for seconds, status in points if status == "succeeded"]
        middle = median(succeeded) if succeeded else None
        failed = sum(1 for _, status in points if status != "succeeded")
        label = (f"{name}: last {len(points)} build durations, oldest first: "
                 + ", ".join(f"{human_duration(s)}{'' if st == 'succeeded' else ' (failed)'}" for s, st in points))
        trends.append({"name": name, "count": len(points), "last": human_duration(points[-1][0]),
                       "last_status": points[-1][1], "median": human_duration(middle) if middle else "—",
                       "failed": failed, "sparkline": charts.sparkline(points, label=label)})
    return trends
