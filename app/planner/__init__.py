"""The chat planner: turns a person's message into precise edits of a recipe.

    result = plan("add nginx and open port 80", recipe)
    result.recipe, result.reply, result.operations, result.changed, result.refused

`plan` is the built-in, deterministic interpreter (no network but the package index).
`get_planner(settings, index_for=...)` returns the LLM planner when `settings` name an endpoint and a
model, else the built-in one; both change recipes only through `apply_operations`, whose operations
are also the LLM's tools (OPERATION_TOOLS). Pure Python: no Flask, RQ, database or environment; the
app passes its settings in (app/config.py) and `index_for(release)` the engine's package index.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Mapping

from app.engine.recipe import validate_recipe

from .answers import CAPABILITIES
from .llm import LLMPlanner
from .nearby import not_understood
from .operations import OPERATION_TOOLS, apply_operations
from .result import PlanResult
from .wording import human_list

log = logging.getLogger("kiln.planner")

__all__ = ["plan", "apply_operations", "PlanResult", "OPERATION_TOOLS", "get_planner", "BuiltinPlanner",
           "PlannerSettings"]


@dataclass(frozen=True)
class PlannerSettings:
    """What the planner needs from the app's config; empty URL or model means the built-in planner only."""
    llm_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""
    llm_timeout: float = 60.0

    @classmethod
    def from_config(cls, config: Mapping) -> "PlannerSettings":
        """From KILN_LLM_URL, KILN_LLM_MODEL, KILN_LLM_API_KEY and KILN_LLM_TIMEOUT (seconds)."""
        timeout = config.get("KILN_LLM_TIMEOUT")
        try:
            timeout = float(timeout) if timeout not in (None, "") else 60.0
        except (TypeError, ValueError):
            raise ValueError(f"KILN_LLM_TIMEOUT must be a number of seconds, got {timeout!r}") from None
        return cls(llm_url=(config.get("KILN_LLM_URL") or "").strip(), llm_model=(config.get("KILN_LLM_MODEL") or "").strip(),
                   llm_api_key=config.get("KILN_LLM_API_KEY") or "", llm_timeout=timeout)


def plan(message: str, recipe: dict, *, index_for: Callable, history: list[dict] | None = None,
         versions: dict[int, dict] | None = None) -> PlanResult:
    """Interpret one chat message against `recipe` (which is not modified).

    `history` (earlier {"role", "content"} messages, oldest first) is optional; with it, "remove it"
    refers to what the person's last message named, and an answer completes a question the assistant
    asked. `versions` ({number: recipe} of the conversation) make undo, "go back to version 3" and
    "what did you change?" possible."""
    from .interpret import interpret

    base = validate_recipe(recipe)
    if not isinstance(message, str) or not message.strip():
        return PlanResult([], base, "Tell me what the server should have. " + CAPABILITIES, False, [])
    said = [h.get("content") for h in history or [] if isinstance(h, dict) and h.get("role") == "user"]
    replies = [h.get("content") for h in history or [] if isinstance(h, dict) and h.get("role") == "assistant"]
    last_reply = history[-1].get("content") if history and isinstance(history[-1], dict) \
        and history[-1].get("role") == "assistant" and replies else ""
    try:
        ctx = interpret(message, base, index_for, [s for s in said if isinstance(s, str)], versions or {},
                        last_reply if isinstance(last_reply, str) else "")
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
    parts += ctx.questions
    if not ctx.lines and not ctx.refused and not ctx.questions:
        parts.append(not_understood(message, ctx.ignored, base["release"]))
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
    """The default planner: `plan` over the given package index (`index_for(release)`)."""

    name = "builtin"

    def __init__(self, index_for: Callable):
        self.index_for = index_for

    def plan(self, message: str, recipe: dict, history: list[dict] | None = None,
             versions: dict[int, dict] | None = None) -> PlanResult:
        return plan(message, recipe, index_for=self.index_for, history=history, versions=versions)


def get_planner(settings: PlannerSettings, *, index_for: Callable):
    """The LLM planner when `settings` name an endpoint and a model (falling back to the built-in one on
    any error), else the built-in planner."""
    builtin = BuiltinPlanner(index_for)
    if not (settings.llm_url and settings.llm_model):
        return builtin
    return LLMPlanner(settings.llm_url, settings.llm_model, api_key=settings.llm_api_key or None,
                      timeout=settings.llm_timeout, fallback=builtin, index_for=index_for)
