"""The stages a build goes through: the engine's, plus image tests when its primary format boots."""
from __future__ import annotations

from app.engine.pipeline import stage_names
from app.engine.recipe import BOOTABLE_FORMATS
from app.models.builds import TEST_STAGE


def is_bootable(formats: list[str]) -> bool:
    return formats[0] in BOOTABLE_FORMATS


def stage_plan(formats: list[str]) -> list[tuple[str, str]]:
    return stage_names() + ([TEST_STAGE] if is_bootable(formats) else [])


def stage_display(build, name: str | None) -> str | None:
    if name is None:
        return None
    return dict(stage_plan(build.formats)).get(name, name)
