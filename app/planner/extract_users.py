"""Users: names, groups, SSH keys and passwords ("create user carol in the sudo group with key ...")."""
from __future__ import annotations

import re
from typing import Any

from .passwords import hash_password
from .reading import NOT_NAMES, Clause, Ctx, is_remove, list_items


# users

_USERNAME = r"([a-z_][a-z0-9_-]{0,31})(?![\w-])"


def is_user_clause(c: Clause, ctx: Ctx) -> bool:
    if c.search(r"\b(?:users?|accounts?|logins?|sudoers?|passwords?|admins?|administrators?)\b"):
        return True
    if c.search(r"\b(?:add|put)\s+[a-z_][\w-]*\s+(?:to|in|into)\s+(?:the\s+)?[\w, -]*\bgroups?\b"):
        return True
    if c.search(r"\b(?:remove|take|drop|kick)\s+[a-z_][\w-]*\s+(?:out\s+)?(?:of|from)\s+(?:the\s+)?[\w, -]*\bgroups?\b"):
        return True
    if ctx.last_user and c.search(r"\b(?:him|her)\b"):
        return True
    names = "|".join(re.escape(u["name"]) for u in ctx.recipe["users"])
    return bool(names and c.search(rf"\b(?:give|make|let)\s+(?:{names})\b"))


def handle_users(ctx: Ctx, c: Clause) -> bool:
    removing = is_remove(c)
    if c.search(r"\broot\b") and c.search(r"\bpassword\b"):
        c.take(r"\b(?:root|password|set|the|to|§\d+§)\b|§\d+§")
        ctx.refused.append("Kiln keeps root locked and does not set a root password; create a user in the sudo group "
                           "with a password or an SSH key instead.")
        return True
    many = re.search(r"\busers\s+((?:[a-z_][a-z0-9_-]*)(?:\s*(?:,|and|&)\s*[a-z_][a-z0-9_-]*)+)", c.s)
    if many and not removing:
        names = [n for n in list_items(many.group(1)) if n not in NOT_NAMES]
        c.consume(many.start(), many.end())
        for name in names:
            handle_users(ctx, Clause(f"user {name} " + c.orig))
        return True
    gm = re.search(r"\b(?:remove|take|drop|kick)\s+" + _USERNAME + r"\s+(?:out\s+)?(?:of|from)\s+(?:the\s+)?"
                   r"((?:[a-z_][\w-]*)(?:\s*(?:,|and)\s*(?:the\s+)?[a-z_][\w-]*)*)\s+groups?\b", c.s)
    if gm:
        name = ctx.last_user if gm.group(1) in ("him", "her") else gm.group(1)
        c.consume(gm.start(), gm.end())
        return ctx.apply({"op": "remove_user_from_groups", "name": name,
                          "groups": [g for g in list_items(gm.group(2)) if g != "the"]})
    name = None
    for pattern in (
        r"\b(?:user|account|login)\s+(?:called\s+|named\s+|with\s+(?:the\s+)?(?:user\s*)?name\s+)?" + _USERNAME,
        r"\b(?:called|named)\s+" + _USERNAME,
        r"\b(?:add|put)\s+" + _USERNAME + r"\s+(?:to|in|into)\s+(?:the\s+)?[\w, -]*\bgroups?\b",
        r"\b(?:give|make|let)\s+" + _USERNAME,
        r"^(?:create|add|new)\s+" + _USERNAME + r"\s+(?:with|in|as)\b",
    ):
        for m in re.finditer(pattern, c.s):
            if m.group(1) not in NOT_NAMES and m.group(1) not in ("him", "her", "them", "it", "me", "us"):
                name = m.group(1)
                c.consume(m.start(1), m.end(1))
                break
        if name:
            break
    if name is None and ctx.last_user and c.search(r"\b(?:him|her|that\s+user|the\s+user)\b"):
        name = ctx.last_user
    if name is None:
        if c.search(r"\b(?:create|add|new|make)\b") or c.search(r"\buser\b"):
            ctx.refused.append("What should the user be called? For example: \"create user alice in the sudo group\".")
            c.take(r"\b(?:users?|accounts?|admins?|sudo|password)\b")
            return True
        return False
    if removing and not c.search(r"\bgroups?\b"):
        c.take(r"\b(?:users?|accounts?)\b")
        if ctx.apply({"op": "remove_user", "name": name}) and ctx.last_user == name:
            ctx.last_user = None
        return True
    groups: list[str] = []
    for gm in re.finditer(r"\b(?:in|to|into|join|joins|of)\s+(?:the\s+)?((?:[a-z_][\w-]*)(?:\s*(?:,|and|&)\s*(?:the\s+)?"
                          r"[a-z_][\w-]*)*)\s+groups?\b", c.s):
        groups += [g for g in list_items(gm.group(1)) if g not in ("the", "a")]
        c.consume(gm.start(), gm.end())
    item = r"(?!(?:with|password|passwords|key|keys|ssh|and|home|shell|the)\b)[a-z_][\w-]*"
    for gm in re.finditer(rf"\bgroups?\s*:?\s+((?:{item})(?:\s*(?:,|and|&)\s*{item})*)", c.s):
        items = [g for g in list_items(gm.group(1)) if g not in NOT_NAMES]
        items = items[:1] + [g for g in items[1:] if g not in ("with", "key", "password")]
        groups += items
        c.consume(gm.start(), gm.end())
    if c.search(r"\b(?:no|without|not|non|never)\s+(?:\w+\s+)?(?:sudo|admin)\b"):
        c.take(r"\b(?:no|without|not|non|never)\s+(?:\w+\s+)?(?:sudo|admin)\b(?:\s+(?:access|rights))?")
    if c.search(r"\b(?:sudo|admin|administrator|sudoer|superuser|root\s+(?:access|rights|privileges))\b"):
        groups.append("sudo")
        c.take(r"\b(?:sudo|admin|administrator|sudoer|superuser)(?:\s+(?:access|rights|privileges|permissions))?\b")
    if c.search(r"\b(?:use|run|access\s+to|manage)\s+docker\b|\bdocker\s+(?:access|rights|permissions)\b"):
        groups.append("docker")
        c.take(r"\bdocker\b")
    keys = [span.value for m, span in c.placeholders(ctx, "key")]
    for m, span in c.placeholders(ctx, "key"):
        c.consume(m.start(), m.end())
    if not keys and c.search(r"\b(?:ssh[- ]?key|public\s+key|key)\s+(?:ssh-|ecdsa-|[a-z0-9+/]{20,})"):
        ctx.refused.append("That SSH key does not look like a public key line (\"ssh-ed25519 AAAA... comment\").")
    password = None
    pm = re.search(r"\bpassword\s*(?:is|of|to|=|:|as|should\s+be)?\s*(§\d+§|\S+)", c.s)
    if pm and not re.search(r"\b(?:no|without|passwordless)\b", c.s[:pm.start()] + " "):
        value = c.original(pm, 1)
        span = ctx.protected.value(value)
        password = span.value if span else value
        c.consume(pm.start(), pm.end())
    c.take(r"\b(?:passwords?|with|keys?|ssh|public|users?|accounts?|create|add|new|called|named|a|an|the|in)\b")
    op: dict[str, Any] = {"op": "add_user", "name": name}
    if groups:
        op["groups"] = list(dict.fromkeys(groups))
    if keys:
        op["sshKeys"] = keys
    if password is not None:
        try:
            op["passwordHash"] = hash_password(password)
        except ValueError as err:
            ctx.refused.append(str(err))
    had_docker = "docker.io" in ctx.recipe["packages"]
    new_user = not any(u["name"] == name for u in ctx.recipe["users"])
    if ctx.apply(op):
        ctx.last_user = name
        if had_docker and new_user and "docker" not in groups:
            ctx.say(f"(Docker is installed; say \"add {name} to the docker group\" to let {name} use it without sudo.)")
    return True
