"""The built-in planner: English -> recipe operations, deterministically and without a network.

A message is cut into clauses ("add nginx and open port 80" -> two). Each clause is read by a
chain of extractors (question, tests, users, files, commands, settings, firewall, services,
software); every extractor consumes the words it used, and whatever is left names software.
Operations are applied clause by clause through `apply_operations`, so a later clause sees the
earlier ones ("switch to bookworm and add docker compose" checks compose against bookworm).
"""
from __future__ import annotations

import re
from typing import Callable


from .configure import handle_config
from .extract_checks import handle_question, handle_tests
from .extract_files import handle_commands, handle_files
from .extract_firewall import handle_firewall
from .extract_settings import (handle_format, handle_hostname, handle_keyboard, handle_locale, handle_name,
                               handle_release, handle_timezone)
from .extract_software import ALIAS_RES, handle_services, handle_software
from .extract_users import handle_users, is_user_clause
from .reading import ACTION_START, POLITE, QUESTION, TEST_START, Clause, Ctx, correct_typos, is_remove
from .intents import rewrite_intent
from .nearby import out_of_scope
from .text import protect, split_clauses


# ---- the clause pipeline -------------------------------------------------------------------------

_REPLACE_PATTERNS = [
    r"^(?:please\s+)?(?:replace|swap|substitute|exchange)\s+(?:out\s+)?(?P<old>.+?)\s+(?:with|for|by)\s+(?P<new>.+)$",
    r"^(?:switch|change|move|migrate|go)\s+from\s+(?P<old>.+?)\s+(?:to|over\s+to)\s+(?P<new>.+)$",
    r"^(?:switch|change)\s+(?P<old>.+?)\s+(?:to|for)\s+(?P<new>.+)$",
    r"^(?:drop|remove|replace|ditch)?\s*(?P<old>.+?)\s+in\s+favou?r\s+of\s+(?P<new>.+)$",
    r"^(?P<new>.+?)\s+(?:instead\s+of|rather\s+than|in\s+place\s+of)\s+(?P<old>.+)$",
    r"^(?:instead\s+of|rather\s+than)\s+(?P<old>.+?)\s*,?\s+(?:use\s+|go\s+with\s+|install\s+|add\s+|pick\s+)(?P<new>.+)$",
]


def _mentions_software(ctx: Ctx, text: str) -> bool:
    if any(rx.search(text) for _, rx in ALIAS_RES):
        return True
    return any(w in ctx.recipe["packages"] for w in re.findall(r"[a-z0-9][a-z0-9+.-]*", text))


def handle_replace(ctx: Ctx, c: Clause) -> bool:
    for pattern in _REPLACE_PATTERNS:
        m = re.match(pattern, c.s.strip())
        if not m:
            continue
        if not _mentions_software(ctx, m.group("old")) or re.search(r"\bports?\b|^\s*\d+\s*$", m.group("old") + " " + m.group("new")):
            continue  # "change nginx port to 8080" is not a software swap
        offset = len(c.s) - len(c.s.lstrip())
        old_clause = Clause(c.orig[offset + m.start("old"):offset + m.end("old")])
        new_clause = Clause(c.orig[offset + m.start("new"):offset + m.end("new")])
        handle_software(ctx, old_clause, removing=True)
        process_clause(ctx, new_clause, asked=False)
        return True
    return False


def process_clause(ctx: Ctx, c: Clause, asked: bool) -> None:
    m = POLITE.match(c.s)
    if m:
        c.consume(m.start(), m.end())
    body = c.s.strip()
    if not body:
        return
    reason = out_of_scope(body)
    if reason:
        ctx.refused.append(reason)
        return
    if (QUESTION.match(body) and not TEST_START.match(body)) or (asked and not ACTION_START.match(body)):
        return handle_question(ctx, c)
    if TEST_START.match(body) or re.search(r"\bshould\s+(?:be\s+)?(?:answer|respond|serve|boot|be\s+running|be\s+up|"
                                            r"listen|run\b|be\s+reachable)", body) \
            or re.match(r"^(?:remove|drop|delete|clear|get\s+rid\s+of|no)\s+(?:more\s+)?(?:all\s+|the\s+|every\s+)?"
                        r"(?:[\w.-]+\s+)?(?:tests?|checks?)\b", body):
        return handle_tests(ctx, c)
    if re.match(r"^(?:undo|revert|roll\s*back)\b", body):
        ctx.refused.append("I cannot undo on my own: every change is a new recipe version, so restore an earlier one "
                           "from the version history, or tell me what to reverse (for example \"remove nginx\").")
        return
    if re.match(r"^(?:reset|start\s+(?:over|again|from\s+scratch)|clear)(?:\s+(?:the\s+)?(?:recipe|everything|it|all))?$", body):
        ctx.refused.append("To start over, start a new conversation; or tell me what to remove "
                           "(for example \"remove all packages\").")
        return
    if re.match(r"^(?:remove|drop|delete|uninstall|purge)\s+(?:all\s+(?:the\s+)?(?:packages|software)|everything"
                r"|every\s+package)\b", body):
        if ctx.recipe["packages"]:
            ctx.apply({"op": "remove_packages", "packages": list(ctx.recipe["packages"])})
        else:
            ctx.say("There are no packages to remove.")
        return
    if re.match(r"^instead\s+of\s+", body) and not re.search(r",", body):
        c.take(r"^\s*instead\s+of\b")
        return handle_software(ctx, c, removing=True)
    if handle_replace(ctx, c):
        return
    if handle_config(ctx, c):
        return
    removing = is_remove(c)
    if is_user_clause(c, ctx):
        handle_users(ctx, c)
    handle_files(ctx, c)
    handle_commands(ctx, c)
    handle_release(ctx, c)
    handle_format(ctx, c)
    handle_hostname(ctx, c)
    handle_timezone(ctx, c)
    handle_keyboard(ctx, c)
    handle_locale(ctx, c)
    handle_name(ctx, c)
    handle_firewall(ctx, c)
    if handle_services(ctx, c):
        return
    handle_software(ctx, c, removing=removing)


def interpret(message: str, recipe: dict, index_for: Callable, history: list[str] | None = None,
              versions: dict[int, dict] | None = None, last_reply: str = "") -> Ctx:
    ctx = Ctx(recipe, index_for, protect(message), history, versions, last_reply)
    correct_typos(ctx)
    ctx.wants_access = bool(re.search(r"\b(?:open|opened|reachable|accessible|allow|allowed|expose|exposed|reach|from\s+outside|"
                                      r"from\s+the\s+(?:lan|network|internet))\b", ctx.protected.text.lower()))
    if rewrite_intent(ctx):
        return ctx
    for text, asked in split_clauses(ctx.protected.text):
        process_clause(ctx, Clause(text), asked)
    return ctx
