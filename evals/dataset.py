"""Eval datasets: one JSON object per line, each an item to run through a suite.

An item names a record of the hand-labelled gold file (``gold``) and may override or add
any of its fields; paths are relative to the dataset file::

    {"id": "heist", "gold": "heist_outfit_change"}
    {"id": "eggs", "gold": "eggs_kite_sample", "input": "sample_input.json",
     "feedback": [{"stage": "script", "message": "scene 2: make the landing funnier"}]}

``input`` is the workflow input (``{"brief": ..., "config": {...}}``, inline or a JSON file);
without one the brief is the script's logline. ``feedback`` is given once at the named gate,
as a person would reject a draft, before the gate is approved.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agents.artifacts import AssetRegistry, MasterScene, MasterScript, Project, Script

__all__ = ["DATASETS_DIR", "GOLD_FILE", "DatasetError", "EvalItem", "Feedback", "load_dataset"]

DATASETS_DIR = Path(__file__).resolve().parent / "datasets"
GOLD_FILE = DATASETS_DIR / "gold_scripts.jsonl"


class DatasetError(ValueError):
    """A dataset file that cannot be read, with the file and line at fault."""


class Feedback(BaseModel):
    """Feedback given once at a gate (a rejection with this message), then approved."""

    model_config = ConfigDict(extra="forbid")

    stage: str = Field(min_length=1)
    message: str = Field(min_length=1)


class ShotCoverage(BaseModel):
    """Gold shot boundaries of one scene: the line indices each shot covers."""

    model_config = ConfigDict(extra="forbid")

    scene: int = Field(ge=1)
    shots: list[list[int]]


class EvalItem(BaseModel):
    """One dataset item with its gold fields resolved."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    gold: str | None = Field(None, description="Id of a record of the gold file to start from.")
    description: str = ""
    input: dict[str, Any] | None = None
    script: Script | None = None
    master_script: MasterScript | None = Field(
        None, description="Without one, each scene's lines as its prose (given a script)."
    )
    assets: AssetRegistry | None = None
    shot_coverage: list[ShotCoverage] | None = None
    feedback: list[Feedback] = Field(default_factory=list)

    def workflow_input(self) -> dict[str, Any]:
        """The workflow input: the item's, or the script's logline (or title) as the brief."""
        if self.input is not None:
            return self.input
        if self.script is None:
            raise DatasetError(f"item '{self.id}' has neither an input nor a script")
        return {"brief": self.script.logline or self.script.title}

    def project(self) -> Project:
        """The project configuration the agents see."""
        given = self.workflow_input()
        return Project.model_validate({**given.get("config", {}), "brief": given["brief"]})

    def state(self, *artifacts: str) -> dict[str, Any]:
        """The state an agent starts from: the project, and these of the item's artifacts.

        Raises:
            DatasetError: The item lacks one of them.
        """
        state: dict[str, Any] = {"project": self.project().model_dump(mode="json")}
        for name in artifacts:
            value = getattr(self, name)
            if value is None:
                raise DatasetError(f"item '{self.id}' has no {name}")
            state[name] = value.model_dump(mode="json")
        return state

    def split(self) -> dict[int, list[list[int]]]:
        """The gold shot split: scene number → the line indices each of its shots covers."""
        return {coverage.scene: coverage.shots for coverage in self.shot_coverage or []}

    @model_validator(mode="after")
    def _master_from_script(self) -> EvalItem:
        """Without a master script, one whose prose is each scene's lines."""
        if self.master_script is None and self.script is not None:
            self.master_script = MasterScript(
                title=self.script.title,
                scenes=[
                    MasterScene(
                        number=scene.number,
                        slugline=scene.slugline,
                        prose=" ".join(line.text for line in scene.lines),
                    )
                    for scene in self.script.scenes
                ],
            )
        return self


def load_dataset(path: Path) -> list[EvalItem]:
    """Read a dataset file and resolve each item against the gold file.

    Raises:
        DatasetError: The file is missing, or a line is not a valid item (file and line named).
    """
    if not path.is_file():
        raise DatasetError(f"no dataset file {path}")
    items: list[EvalItem] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        try:
            fields = json.loads(raw)
            if not isinstance(fields, dict):
                raise DatasetError(f"{where}: an item is a JSON object")
            items.append(_resolve(fields, path.parent))
        except (json.JSONDecodeError, ValidationError, DatasetError, OSError) as error:
            raise DatasetError(f"{where}: {error}") from None
    ids = [item.id for item in items]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise DatasetError(f"{path}: repeated item ids {repeated}")
    if not items:
        raise DatasetError(f"{path}: the dataset has no items")
    return items


def _resolve(fields: dict[str, Any], folder: Path) -> EvalItem:
    merged = dict(fields)
    if isinstance(fields.get("gold"), str):
        record = _gold_records().get(fields["gold"])
        if record is None:
            raise DatasetError(f"no gold record '{fields['gold']}' in {GOLD_FILE.name}")
        merged = {**record, **fields}
    if isinstance(merged.get("input"), str):
        merged["input"] = json.loads((folder / merged["input"]).read_text(encoding="utf-8"))
    return EvalItem.model_validate(merged)


@cache
def _gold_records() -> dict[str, dict[str, Any]]:
    records = map(json.loads, GOLD_FILE.read_text(encoding="utf-8").splitlines())
    return {record.pop("id"): record for record in records}
