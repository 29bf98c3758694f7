"""What a build hands back: its artifacts and manifest. Apart from the pipeline so the rootless runner
(userns), which rebuilds these from its child's answer, does not import the pipeline that imports it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Artifact:
    kind: str
    path: Path
    size: int
    sha256: str

    def to_dict(self) -> dict:
        return {"kind": self.kind, "filename": self.path.name, "size": self.size, "sha256": self.sha256}


@dataclass
class BuildResult:
    artifacts: list[Artifact]
    manifest: dict
    cached: bool
    stage_timings: dict[str, float] = field(default_factory=dict)
