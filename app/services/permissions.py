"""Who may do what: one table for roles and API key scopes."""
from __future__ import annotations

from app.models.accounts import ROLE_RANK

# permission -> lowest role that has it. API keys need a scope with the same name (or "admin").
PERMISSIONS: dict[str, str] = {
    "org:read": "viewer",
    "conversations:read": "viewer",
    "conversations:write": "member",
    "builds:read": "viewer",
    "builds:write": "member",
    "members:read": "viewer",
    "members:manage": "admin",
    "structure:manage": "admin",
    "keys:manage": "admin",
    "org:manage": "admin",
    "webhooks:manage": "admin",
    "activity:read": "admin",
    "org:delete": "owner",
    "org:transfer": "owner",
}

SCOPES = ("builds:read", "builds:write", "conversations:read", "conversations:write", "admin")

# A key scope covers these permissions ("admin" covers all).
SCOPE_GRANTS: dict[str, set[str]] = {
    "builds:read": {"builds:read", "org:read"},
    "builds:write": {"builds:read", "builds:write", "org:read"},
    "conversations:read": {"conversations:read", "org:read"},
    "conversations:write": {"conversations:read", "conversations:write", "org:read"},
}


def api_key_role(scopes: list[str] | None) -> str:
    """An API key acts as an admin of its org with the admin scope, otherwise as a member."""
    return "admin" if "admin" in (scopes or []) else "member"


def role_allows(role: str | None, permission: str) -> bool:
    needed = PERMISSIONS[permission]
    return role is not None and ROLE_RANK.get(role, -1) >= ROLE_RANK[needed]


def scopes_allow(scopes: list[str] | None, permission: str) -> bool:
    scopes = scopes or []
    if "admin" in scopes:
        return True
    return any(permission in SCOPE_GRANTS.get(scope, set()) for scope in scopes)
