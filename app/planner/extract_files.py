"""Files with content and build commands ("create /etc/motd with content 'hello'")."""
from __future__ import annotations

import re
from typing import Any

from .reading import Clause, Ctx, is_remove


# files

def handle_files(ctx: Ctx, c: Clause) -> bool:
    paths = c.placeholders(ctx, "path")
    if not paths and ctx.last_file and c.search(r"\bmake\s+(?:it|that|the\s+(?:file|script))\s+executable\b"):
        entry = next((f for f in ctx.recipe["files"] if f["path"] == ctx.last_file), None)
        if entry:
            c.take(r"\bmake\s+(?:it|that|the\s+(?:file|script))\s+executable\b")
            ctx.apply({"op": "add_file", "path": entry["path"], "content": entry["content"], "mode": "0755",
                       "owner": entry["owner"]})
            return True
    if not paths:
        return _motd(ctx, c)
    if is_remove(c):
        for m, span in paths:
            c.consume(m.start(), m.end())
            ctx.apply({"op": "remove_file", "path": span.value})
        c.take(r"\b(?:the\s+)?files?\b")
        return True
    if not c.search(r"\b(?:file|create|add|write|put|make|content|contents|containing|saying|with|text|owned|mode)\b"):
        return False
    m, span = paths[0]
    c.consume(m.start(), m.end())
    mode = None
    mm = re.search(r"\b(?:with\s+)?(?:mode|permissions?|chmod|perms)\s*(?:of|to|=|:)?\s*(0?[0-7]{3,4})\b", c.s)
    if mm:
        mode = mm.group(1) if len(mm.group(1)) == 4 else "0" + mm.group(1)
        c.consume(mm.start(), mm.end())
    elif c.search(r"\bexecutable\b"):
        mode = "0755"
        c.take(r"\b(?:an?\s+)?executable\b")
    owner = None
    om = re.search(r"\b(?:and\s+)?(?:owned\s+by|owner\s*(?:is|:|=)?|belongs\s+to)\s+([a-z_][\w-]*(?::[a-z_][\w-]*)?)", c.s)
    if om:
        owner = om.group(1)
        c.consume(om.start(), om.end())
    quotes = c.placeholders(ctx, "quote")
    content = None
    if quotes:
        qm, qspan = quotes[0]
        content = qspan.value
        c.consume(qm.start(), qm.end())
    else:
        cm = re.search(r"\b(?:with\s+(?:the\s+)?(?:content|contents|text)|containing|saying|that\s+says|"
                       r"content|contents|text)\s*(?:of\s+)?:?\s*(.+)$", c.s)
        if cm:
            content = re.sub(r"\s+(?:with|and)\s*$", "", c.original(cm, 1).strip()).strip()
            c.consume(cm.start(), cm.end())
    content = (content or "").replace("\\n", "\n").replace("\\t", "\t")
    if content and not content.endswith("\n"):
        content += "\n"
    op: dict[str, Any] = {"op": "add_file", "path": span.value, "content": content}
    if mode:
        op["mode"] = mode
    if owner:
        op["owner"] = owner
    if ctx.apply(op):
        ctx.last_file = span.value
    c.take(r"\b(?:create|add|write|put|make|an?|the|file|with|content|contents|containing|in|to|into|empty|new|at)\b")
    return True


# build commands

def handle_commands(ctx: Ctx, c: Clause) -> bool:
    m = c.search(r"\b(?:run|execute|add\s+(?:the\s+)?(?:build\s+)?command|command)\s+(?:the\s+)?(?:command\s+)?(§\d+§)")
    span = ctx.protected.value(m.group(1)) if m else None
    if span is None or span.kind not in ("quote", "command"):
        return False  # a command is always quoted or in backticks: "run `make install`"
    c.consume(m.start(), m.end())
    ctx.apply({"op": "remove_command" if is_remove(c) else "add_command", "command": span.value})
    c.take(r"\b(?:at|during|in)\s+(?:the\s+)?build(?:\s+time)?\b|\bwhen\s+building\b")
    return True


def _motd(ctx: Ctx, c: Clause) -> bool:
    """"set the motd to 'Welcome'": the message of the day is /etc/motd."""
    m = c.search(r"\b(?:motd|message\s+of\s+the\s+day|login\s+(?:message|banner))\b")
    if not m:
        return False
    if is_remove(c):
        c.consume(m.start(), m.end())
        ctx.apply({"op": "remove_file", "path": "/etc/motd"})
        return True
    quotes = c.placeholders(ctx, "quote")
    if quotes:
        qm, span = quotes[0]
        content = span.value
        c.consume(qm.start(), qm.end())
    else:
        cm = re.search(r"\b(?:to|say|says|saying|reads?|as|:)\s+(.+)$", c.s[m.end():])
        if not cm:
            return False
        content = c.orig[m.end() + cm.start(1):m.end() + cm.end(1)].strip()
        c.consume(m.end() + cm.start(), m.end() + cm.end())
    c.consume(m.start(), m.end())
    content = content.replace("\\n", "\n")
    ctx.apply({"op": "add_file", "path": "/etc/motd", "content": content if content.endswith("\n") else content + "\n"})
    c.take(r"\b(?:set|change|make|the|to|a|with)\b")
    return True
