"""Notifications: what the outbox's events mean for one person, in the app and (by preference) by e-mail.

A notification belongs to a person, not to an organization's members at large: the build's creator hears
about their build, admins hear about a disabled webhook. Reading them is the person's own business, so
the API needs a person (no API key) and never another person's rows.
"""
from __future__ import annotations

from sqlalchemy import func, select, update

from app.extensions import db
from app.models import Build, Membership, OutboxEvent, TestRun, User
from app.models.base import parse_uuid, utcnow
from app.models.notifications import NOTIFICATION_KINDS, Notification, NotificationPreference
from app.services.errors import NotFound, ValidationFailed

BUILD_TITLES = {"build.completed": "Build #{number} {name} succeeded", "build.failed": "Build #{number} {name} failed",
                "build.cancelled": "Build #{number} {name} was cancelled"}


# Preferences ----------------------------------------------------------------------------------------

def email_preferences(user_id) -> dict[str, bool]:
    """kind -> wants e-mail, defaults filled in."""
    chosen = {p.kind: p.email for p in db.session.scalars(
        select(NotificationPreference).where(NotificationPreference.user_id == user_id))}
    return {kind: chosen.get(kind, default) for kind, (_label, default) in NOTIFICATION_KINDS.items()}


def set_email_preferences(user, choices: dict[str, bool]) -> dict[str, bool]:
    bad = sorted(set(choices) - set(NOTIFICATION_KINDS))
    if bad:
        raise ValidationFailed(f"email: unknown notification kind(s) {', '.join(bad)}",
                               {"email": [f"Kinds are: {', '.join(NOTIFICATION_KINDS)}."]})
    rows = {p.kind: p for p in db.session.scalars(
        select(NotificationPreference).where(NotificationPreference.user_id == user.id))}
    for kind, wanted in choices.items():
        if kind in rows:
            rows[kind].email = bool(wanted)
        else:
            db.session.add(NotificationPreference(user_id=user.id, kind=kind, email=bool(wanted)))
    db.session.flush()
    return email_preferences(user.id)


# Creating -------------------------------------------------------------------------------------------

def notify(user_id, kind: str, *, org_id, title: str, body: str = "", link: str | None = None,
           entity_type: str | None = None, entity_id=None, event_id=None) -> Notification:
    row = Notification(user_id=user_id, org_id=org_id, kind=kind, title=title[:255], body=body, link=link,
                       entity_type=entity_type, entity_id=str(entity_id) if entity_id is not None else None,
                       event_id=event_id, email_wanted=email_preferences(user_id).get(kind, False))
    db.session.add(row)
    return row


def _get(model, raw):
    key = parse_uuid(raw)
    return db.session.get(model, key) if key is not None else None


def _member(org_id, user_id) -> bool:
    return user_id is not None and Membership.find(org_id, user_id) is not None


def notify_event(event: OutboxEvent) -> list[Notification]:
    """The notifications one outbox event makes (called once per event by the dispatcher)."""
    if event.type in BUILD_TITLES:
        build = _get(Build, event.entity_id)
        if build is None or not _member(build.org_id, build.created_by_id):
            return []
        body = event.payload.get("failureReason") or ""
        return [notify(build.created_by_id, event.type, org_id=build.org_id, event_id=event.id,
                       title=BUILD_TITLES[event.type].format(number=build.number, name=build.name), body=body,
                       link=f"/builds/{build.id}", entity_type="build", entity_id=build.id)]
    if event.type == "test.completed":
        build = _get(Build, event.entity_id)
        run = _get(TestRun, event.payload.get("testRunId"))
        if build is None:
            return []
        who = (run.created_by_id if run is not None and run.created_by_id else None) or build.created_by_id
        if not _member(build.org_id, who):
            return []
        failed = event.payload.get("failed") or []
        body = ("Failed: " + "; ".join(failed)) if failed else "All tests passed."
        return [notify(who, event.type, org_id=build.org_id, event_id=event.id,
                       title=f"Tests of build #{build.number} {build.name}: {event.payload.get('status')}",
                       body=body, link=f"/builds/{build.id}", entity_type="build", entity_id=build.id)]
    if event.type == "invitation.created":
        user = User.by_email(event.payload.get("email") or "")
        if user is None:
            return []  # the invitation mail reaches people who have no account yet
        return [notify(user.id, event.type, org_id=event.org_id, event_id=event.id,
                       title=f"You are invited to {event.payload.get('orgName')}",
                       body=f"as {event.payload.get('role')}; the link is in the invitation e-mail.",
                       entity_type="invitation", entity_id=event.entity_id)]
    return []


# Reading --------------------------------------------------------------------------------------------

def notifications_of(user, *, unread_only: bool = False):
    query = select(Notification).where(Notification.user_id == user.id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    return query.order_by(Notification.created_at.desc(), Notification.id)


def unread_count(user) -> int:
    return db.session.scalar(select(func.count()).select_from(Notification)
                             .where(Notification.user_id == user.id, Notification.read_at.is_(None))) or 0


def get_notification(user, notification_id) -> Notification:
    key = parse_uuid(notification_id)
    row = db.session.get(Notification, key) if key else None
    if row is None or row.user_id != user.id:
        raise NotFound.of("Notification", notification_id)
    return row


def mark(user, notification_id, *, read: bool) -> Notification:
    row = get_notification(user, notification_id)
    row.read_at = (row.read_at or utcnow()) if read else None
    return row


def read_all(user) -> int:
    result = db.session.execute(update(Notification)
                                .where(Notification.user_id == user.id, Notification.read_at.is_(None))
                                .values(read_at=utcnow()).execution_options(synchronize_session=False))
    db.session.expire_all()
    return result.rowcount


# E-mail ---------------------------------------------------------------------------------------------

def claim_email(notification_id) -> Notification | None:
    """The notification if this caller is the one to mail it (each is mailed at most once)."""
    result = db.session.execute(update(Notification)
                                .where(Notification.id == notification_id, Notification.email_wanted.is_(True),
                                       Notification.emailed_at.is_(None))
                                .values(emailed_at=utcnow()).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return None
    row = db.session.get(Notification, notification_id)
    db.session.refresh(row)
    return row


def email_message(row: Notification, base_url: str) -> tuple[str, str, str] | None:
    """(to, subject, body) for a notification, or None when its person is gone."""
    user = db.session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    link = f"\n\n{base_url.rstrip('/')}{row.link}" if row.link else ""
    body = (f"Hello {user.name},\n\n{row.title}.\n" + (f"\n{row.body}\n" if row.body else "") + link +
            "\n\nChoose which notifications reach you by e-mail on your account page.\n")
    return user.email, f"[Kiln] {row.title}", body
