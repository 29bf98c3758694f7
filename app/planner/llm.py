"""Optional planner backed by an OpenAI-compatible chat-completions endpoint.

The model gets the current recipe, the recent conversation and OPERATION_TOOLS; its tool calls
are checked and applied by `apply_operations` exactly like any other edit. Any failure at all
(connection, timeout, HTTP status, malformed JSON, an invalid tool call) falls back to the
built-in planner and is logged as a warning on the "kiln.planner" logger.
"""
from __future__ import annotations

import json
import logging
from typing import Callable

import requests

from app.engine.recipe import dump_yaml, validate_recipe

from .result import PlanResult
from .operations import OPERATION_TOOLS, apply_operations
from .passwords import hash_password
from .roles import ROLES

log = logging.getLogger("kiln.planner")

SYSTEM_PROMPT = """You design Debian server images for Kiln. The user describes the server they want; you change
the recipe ONLY by calling the provided tools (one call per change), using real Debian package names for the
recipe's release (e.g. openssh-server for SSH, docker.io for Docker, postgresql, apache2, nodejs). Supported
releases: trixie (Debian 13) and bookworm (Debian 12). Formats: iso, qcow2, oci, rootfs. If the user only asks
a question, answer it from the recipe without calling tools. Reply in one or two plain sentences.
When the user names a server role, call apply_role with one of these roles (set open when they ask for access):
{roles}
For "undo" or "go back to version N", call restore_version. When a request is ambiguous (which database?),
ask a short question with the choices instead of calling tools.

The current recipe (YAML):
{recipe}"""

HISTORY_LIMIT = 10
ROLE_LINES = "\n".join(f"- {key}: {role.label}" for key, role in ROLES.items())


class LLMError(Exception):
    """The model's answer could not be used."""


def _total_tokens(data) -> int:
    """The chat-completions answer's usage.total_tokens (what the turn is debited), 0 when not reported."""
    usage = data.get("usage") if isinstance(data, dict) else None
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    return total if isinstance(total, int) and not isinstance(total, bool) and total > 0 else 0


class LLMPlanner:
    name = "llm"

    def __init__(self, url: str, model: str, *, api_key: str | None = None, timeout: float = 60,
                 fallback, index_for: Callable):
        self.url = url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.fallback = fallback
        self.index_for = index_for

    def plan(self, message: str, recipe: dict, history: list[dict] | None = None,
             versions: dict[int, dict] | None = None) -> PlanResult:
        try:
            return self._plan(message, recipe, history or [], versions or {})
        except (requests.RequestException, LLMError, ValueError) as err:
            log.warning("LLM planner failed (%s); falling back to the built-in planner", err)
            return self.fallback.plan(message, recipe, history, versions)

    def _messages(self, message: str, recipe: dict, history: list[dict]) -> list[dict]:
        msgs = [{"role": "system", "content": SYSTEM_PROMPT.format(recipe=dump_yaml(recipe), roles=ROLE_LINES)}]
        for h in history[-HISTORY_LIMIT:]:
            role, content = h.get("role"), h.get("content")
            if role in ("user", "assistant") and isinstance(content, str) and content:
                msgs.append({"role": role, "content": content})
        msgs.append({"role": "user", "content": message})
        return msgs

    def _plan(self, message: str, recipe: dict, history: list[dict], versions: dict[int, dict]) -> PlanResult:
        base = validate_recipe(recipe)
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = {"model": self.model, "messages": self._messages(message, base, history), "tools": OPERATION_TOOLS,
                "tool_choice": "auto", "temperature": 0}
        resp = requests.post(f"{self.url}/chat/completions", json=body, headers=headers,
                             timeout=(min(10.0, self.timeout), self.timeout))
        if resp.status_code != 200:
            raise LLMError(f"HTTP {resp.status_code} from {self.url}/chat/completions: {resp.text[:200]}")
        try:
            data = resp.json()
            choice = data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise LLMError(f"not a chat-completions answer: {err!r}") from None
        if not isinstance(choice, dict):
            raise LLMError("the answer's message is not an object")
        tokens = _total_tokens(data)
        text = (choice.get("content") or "").strip() if isinstance(choice.get("content"), (str, type(None))) else ""
        operations = [self._operation(call) for call in choice.get("tool_calls") or []]
        if not operations:
            if not text:
                raise LLMError("the model returned neither text nor tool calls")
            return PlanResult([], base, text, False, [], tokens_used=tokens)
        new, descriptions = apply_operations(base, operations, index_for=self.index_for, versions=versions)
        changes = " ".join(descriptions)
        reply = f"{text}\n\n{changes}" if text else changes
        return PlanResult(operations, new, reply, new != base, [], tokens_used=tokens)

    @staticmethod
    def _operation(call: dict) -> dict:
        try:
            fn = call["function"]
            name = fn["name"]
            raw = fn.get("arguments") or "{}"
            args = json.loads(raw) if isinstance(raw, str) else raw
        except (KeyError, TypeError, ValueError) as err:
            raise LLMError(f"malformed tool call {call!r}: {err!r}") from None
        if not isinstance(args, dict) or "op" in args:
            raise LLMError(f"tool call {name!r} has arguments that are not an object of parameters")
        if name == "add_user" and isinstance(args.get("password"), str) and "passwordHash" not in args:
            # Operations are stored with the chat message: keep only the hash, never the password itself.
            args = {k: v for k, v in args.items() if k != "password"} | {"passwordHash": hash_password(args["password"])}
        return {"op": name, **args}
