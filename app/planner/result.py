"""What one planner turn produces; its own module so the planners (built-in and LLM) share it without
importing each other."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PlanResult:
    operations: list[dict]
    recipe: dict
    reply: str
    changed: bool
    refused: list[str] = field(default_factory=list)
    tokens_used: int = 0  # model tokens the turn cost (the LLM's reported usage; 0 for the built-in planner)
