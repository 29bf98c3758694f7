"""The chat planner: turns a person's message into precise edits of a recipe.

    result = plan("add nginx and open port 80", recipe)
    result.recipe, result.reply, result.operations, result.changed, result.refused

`plan` is the built-in, deterministic interpreter (no network). `get_planner()` returns the LLM
planner when KILN_LLM_URL and KILN_LLM_MODEL are set, else the built-in one; both change recipes
only through `apply_operations`, whose operations are also the LLM's tools (OPERATION_TOOLS).
Pure Python: no Flask, RQ or database, so it runs anywhere.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Mapping

from app.engine.packages import get_index
from app.engine.recipe import validate_recipe

from .answers import CAPABILITIES
from .operations import OPERATION_TOOLS, apply_operations
from .wording import human_list

log = logging.getLogger("kiln.planner")

__all__ = ["plan", "apply_operations", "PlanResult", "OPERATION_TOOLS", "get_planner", "BuiltinPlanner"]


@dataclass
class PlanResult:
    operations: list[dict]
    recipe: dict
    reply: str
    changed: bool
    refused: list[str] = field(default_factory=list)


def plan(message: str, recipe: dict, *, index_for: Callable = get_index, history: list[dict] | None = None) -> PlanResult:
    """Interpret one chat message against `recipe` (which is not modified).

    `history` (earlier {"role", "content"} messages, oldest first) is optional; with it, "remove it"
    refers to what the person's last message named."""
    from .interpret import interpret

    base = validate_recipe(recipe)
    if not isinstance(message, str) or not message.strip():
        return PlanResult([], base, "Tell me what the server should have. " + CAPABILITIES, False, [])
    said = [h.get("content") for h in history or [] if isinstance(h, dict) and h.get("role") == "user"]
    try:
        ctx = interpret(message, base, index_for, [s for s in said if isinstance(s, str)])
    except Exception:  # a planner bug must not take the chat down; the log has the traceback
        log.exception("built-in planner failed on %r", message[:500])
        return PlanResult([], base, "Sorry, I could not work out that message, and nothing was changed. "
                          "Try saying one change at a time, for example \"add nginx\".", False,
                          ["the planner could not process this message"])
    changed = ctx.recipe != base
    parts: list[str] = []
    if ctx.corrections:
        fixes = [f"\"{a}\" as {b}" for a, b in dict.fromkeys(ctx.corrections)]
        parts.append(f"(I read {human_list(fixes)}.)")
    parts += ctx.lines
    parts += ctx.refused
    if not ctx.lines and not ctx.refused:
        lead = "I did not understand that"
        if ctx.ignored:
            lead += f" (I don't know \"{' '.join(dict.fromkeys(ctx.ignored))}\")"
        parts.append(lead + ". " + CAPABILITIES)
    elif not changed and ctx.refused and not ctx.lines:
        parts.append("The recipe is unchanged.")
    reply = "\n".join(_join_sentences(parts))
    return PlanResult(ctx.operations, ctx.recipe if changed else base, reply, changed, list(ctx.refused))


def _join_sentences(parts: list[str]) -> list[str]:
    """Short one-line statements read better as one paragraph; multi-line answers keep their lines."""
    out: list[str] = []
    for p in parts:
        if out and "\n" not in p and "\n" not in out[-1] and not out[-1].endswith("```"):
            out[-1] = out[-1] + " " + p
        else:
            out.append(p)
    return out


class BuiltinPlanner:
    """The default planner: `plan` with an injectable package index."""

    name = "builtin"

    def __init__(self, index_for: Callable = get_index):
        self.index_for = index_for

    def plan(self, message: str, recipe: dict, history: list[dict] | None = None) -> PlanResult:
        return plan(message, recipe, index_for=self.index_for, history=history)


def get_planner(env: Mapping[str, str] = os.environ, *, index_for: Callable = get_index):
    """The LLM planner when KILN_LLM_URL and KILN_LLM_MODEL are set (falling back to the built-in one on
    any error), else the built-in planner."""
    builtin = BuiltinPlanner(index_for)
    url, model = (env.get("KILN_LLM_URL") or "").strip(), (env.get("KILN_LLM_MODEL") or "").strip()
    if not (url and model):
        return builtin
    from .llm import LLMPlanner

    try:
        timeout = float(env.get("KILN_LLM_TIMEOUT") or 60)
    except ValueError:
        raise ValueError(f"KILN_LLM_TIMEOUT must be a number of seconds, got {env.get('KILN_LLM_TIMEOUT')!r}") from None
    return LLMPlanner(url, model, api_key=env.get("KILN_LLM_API_KEY") or None, timeout=timeout,
                      fallback=builtin, index_for=index_for)
