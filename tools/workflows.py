"""The ComfyUI workflow library: API-format JSON plus a YAML metadata file per workflow.

A workflow is ``comfy_workflows/<name>.json`` (ComfyUI's API format: ``{"<node id>":
{"class_type": ..., "inputs": {...}}}``) and ``comfy_workflows/<name>.yaml`` saying what it
does and which node fields are its settable inputs. Dropping both files in the folder adds
a workflow; nothing else is edited. Every file is validated when loaded and a broken one
fails with a :class:`WorkflowError` naming it.

Example metadata::

    name: keyframe_from_references
    description: A film keyframe from a prompt and a reference board.
    category: keyframe
    tags: [keyframe, reference, text-to-image]
    inputs:
      prompt: {node: "6", field: text, type: string, required: true}
      seed: {node: "10", field: seed, type: int, default: 0, minimum: 0}
      references: {node: "2", field: image, type: image}
    outputs:
      - {node: "12", kind: image, description: the keyframe}

A string input that takes one of a list lists it (``choices``), each checked against the
server's options; an output's ``kind`` is ``image``, ``video`` or ``audio``::

    voice: {node: "1", field: voice, type: string, default: "Narrator (en)",
            choices: ["Narrator (en)", "Sarah (en)"]}

A workflow whose output size follows from an input image declares how, so a request that
would make an oversized image is refused before any job is sent (see
:meth:`WorkflowSpec.output_size`)::

    output_scale: {of: image, by: [4, scale_by]}   # the 4x model, then the scale_by input
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

__all__ = [
    "COMFY_WORKFLOWS",
    "InputType",
    "OutputScale",
    "WatchedCatalogue",
    "WorkflowError",
    "WorkflowInput",
    "WorkflowOutput",
    "WorkflowSpec",
    "load_workflow",
    "load_workflows",
    "validate_against_object_info",
]

COMFY_WORKFLOWS = Path(__file__).resolve().parent.parent / "comfy_workflows"

InputType = Literal["string", "int", "float", "bool", "image", "mask"]

# ComfyUI's type name in /object_info for each metadata type; images and masks are file
# names of a loader node (a combo list with ``image_upload``).
_COMFY_TYPES: dict[str, str] = {
    "string": "STRING",
    "int": "INT",
    "float": "FLOAT",
    "bool": "BOOLEAN",
}
# PyYAML's libyaml parser when its wheel has one (ten times the pure-Python one's speed; every
# process loads the catalogue, and with it each workflow's metadata).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# How /object_info declares an input that takes one of a list of values (besides a bare list).
_CHOICE_TYPES = ("COMBO", "COMFY_DYNAMICCOMBO_V3")
# A choice that looks like a file name is a file the server must have (a model, mostly).
_FILE_NAME = re.compile(r".+\.[A-Za-z0-9]{2,12}")
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "image": (str,),
    "mask": (str,),
}


class WorkflowError(ValueError):
    """A workflow file is broken; the message names the file and what is wrong."""


class _Meta(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkflowInput(_Meta):
    """One settable input: which node field it fills, its type, default and limits."""

    node: str
    field: str
    type: InputType
    description: str = ""
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    required: bool = False
    choices: list[str] | None = None
    """The values it takes, for a string that is one of a list (a voice, say): each must be
    one of the server's options, and callers can offer them (speech casts from a workflow's
    voices)."""

    @model_validator(mode="after")
    def _default_fits(self) -> WorkflowInput:
        if self.choices is not None and self.type != "string":
            raise ValueError(f"choices apply to strings, not to {self.type}")
        if self.choices is not None and self.default not in (None, *self.choices):
            raise ValueError(f"default {self.default!r} is not one of the choices")
        if self.default is None:
            return self
        allowed = _PYTHON_TYPES[self.type]
        is_bool = isinstance(self.default, bool)
        if not isinstance(self.default, allowed) or (is_bool and self.type != "bool"):
            raise ValueError(f"default {self.default!r} is not of type {self.type}")
        if (self.minimum is not None or self.maximum is not None) and self.type not in (
            "int",
            "float",
        ):
            raise ValueError(f"minimum and maximum apply to numbers, not to {self.type}")
        if self.minimum is not None and self.default < self.minimum:
            raise ValueError(f"default {self.default} is below the minimum {self.minimum}")
        if self.maximum is not None and self.default > self.maximum:
            raise ValueError(f"default {self.default} is above the maximum {self.maximum}")
        return self


class WorkflowOutput(_Meta):
    """A node whose saved files are the workflow's result."""

    node: str
    kind: Literal["image", "video", "audio"]
    description: str = ""


class OutputScale(_Meta):
    """The output's width and height: those of the input image ``of`` times every factor.

    A factor is a number, or the name of a number input (its value, else its default).
    """

    of: str
    by: list[float | str] = Field(min_length=1)


class _Metadata(_Meta):
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str = Field(min_length=1)
    category: str = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)
    inputs: dict[str, WorkflowInput] = Field(default_factory=dict)
    outputs: list[WorkflowOutput] = Field(min_length=1)
    output_scale: OutputScale | None = None


class WorkflowSpec(_Metadata):
    """A validated workflow: its metadata, the API-format graph and where it came from."""

    graph: dict[str, Any]
    source: Path
    _version: str = PrivateAttr(default="")

    @property
    def version(self) -> str:
        """SHA-256 of the JSON and metadata bytes as loaded: changes when either file does."""
        return self._version

    def search_text(self) -> str:
        """What discovery embeds: name, description, category and tags."""
        words = self.name.replace("_", " ")
        return (
            f"{words}. {self.description} Category: {self.category}. Tags: {', '.join(self.tags)}."
        )

    def output_size(self, image: tuple[int, int], values: dict[str, Any]) -> tuple[int, int]:
        """The output's (width, height) for an input image of size ``image`` and ``values``.

        Only for a workflow with an ``output_scale``; ComfyUI rounds the scaled sides.
        """
        assert self.output_scale is not None
        factor = 1.0
        for by in self.output_scale.by:
            factor *= by if not isinstance(by, str) else values.get(by, self.inputs[by].default)
        return round(image[0] * factor), round(image[1] * factor)

    def class_types(self) -> set[str]:
        """Every node class the graph uses."""
        return {node["class_type"] for node in self.graph.values()}


def load_workflows(
    folder: Path = COMFY_WORKFLOWS, *, object_info: dict[str, Any] | None = None
) -> dict[str, WorkflowSpec]:
    """Load and validate every workflow in ``folder``.

    Args:
        folder: Where ``<name>.json`` + ``<name>.yaml`` pairs live.
        object_info: A ComfyUI server's ``/object_info``; when given, every node class and
            every mapped input must exist there with a matching type.

    Raises:
        WorkflowError: A file is broken, a JSON has no metadata (or the reverse), or two
            workflows share a name; the message names the file.
    """
    folder = Path(folder)
    graphs = {path.stem: path for path in folder.glob("*.json")}
    metas = {path.stem: path for path in [*folder.glob("*.yaml"), *folder.glob("*.yml")]}
    for stem in sorted(graphs.keys() ^ metas.keys()):
        present = graphs.get(stem) or metas[stem]
        missing = "metadata (<name>.yaml)" if stem in graphs else "API-format JSON (<name>.json)"
        raise WorkflowError(f"{present}: has no matching {missing}")
    specs: dict[str, WorkflowSpec] = {}
    for stem in sorted(graphs):
        spec = load_workflow(graphs[stem], metas[stem], object_info=object_info)
        if spec.name in specs:
            raise WorkflowError(
                f"{metas[stem]}: workflow name '{spec.name}' is also used by "
                f"{specs[spec.name].source}"
            )
        specs[spec.name] = spec
    return specs


def load_workflow(
    graph_path: Path, metadata_path: Path, *, object_info: dict[str, Any] | None = None
) -> WorkflowSpec:
    """Load one workflow from its JSON and metadata files and validate it.

    Raises:
        WorkflowError: Naming the file and what is wrong with it.
    """
    try:
        graph_bytes = graph_path.read_bytes()
        graph = json.loads(graph_bytes)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WorkflowError(f"{graph_path}: not readable JSON: {error}") from None
    _check_api_format(graph_path, graph)
    raw = metadata_path.read_bytes()
    try:
        metadata = yaml.load(raw, Loader=_YAML_LOADER)
    except yaml.YAMLError as error:
        raise WorkflowError(f"{metadata_path}: not readable YAML: {error}") from None
    if not isinstance(metadata, dict):
        raise WorkflowError(f"{metadata_path}: expected a mapping of metadata fields")
    try:
        spec = WorkflowSpec.model_validate({**metadata, "graph": graph, "source": graph_path})
    except ValidationError as error:
        raise WorkflowError(f"{metadata_path}: invalid metadata: {error}") from None
    spec._version = hashlib.sha256(graph_bytes + b"\0" + raw).hexdigest()
    _check_mapping(metadata_path, spec)
    if object_info is not None:
        validate_against_object_info(spec, object_info)
    return spec


def _check_api_format(path: Path, graph: object) -> None:
    if not isinstance(graph, dict) or not graph:
        raise WorkflowError(f"{path}: expected ComfyUI's API format, a non-empty object of nodes")
    for node_id, node in graph.items():
        if not (
            isinstance(node, dict)
            and isinstance(node.get("class_type"), str)
            and isinstance(node.get("inputs"), dict)
        ):
            raise WorkflowError(
                f"{path}: node {node_id!r} needs 'class_type' and 'inputs' (API format; "
                "export with 'Save (API)')"
            )
        for field, value in node["inputs"].items():
            if _is_link(value) and value[0] not in graph:
                raise WorkflowError(
                    f"{path}: node {node_id!r} input {field!r} links to missing node {value[0]!r}"
                )


def _is_link(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def _check_mapping(path: Path, spec: WorkflowSpec) -> None:
    for name, item in spec.inputs.items():
        node = spec.graph.get(item.node)
        if node is None:
            raise WorkflowError(f"{path}: input '{name}' maps to node {item.node!r}, not in JSON")
        if item.field not in node["inputs"]:
            raise WorkflowError(
                f"{path}: input '{name}' maps to {item.node}.{item.field}, but node "
                f"{item.node} ({node['class_type']}) has no input '{item.field}' in the JSON"
            )
        if _is_link(node["inputs"][item.field]):
            raise WorkflowError(
                f"{path}: input '{name}' maps to {item.node}.{item.field}, which is a link"
            )
    for output in spec.outputs:
        if output.node not in spec.graph:
            raise WorkflowError(f"{path}: output node {output.node!r} is not in the JSON")
    if spec.output_scale is not None:
        _check_output_scale(path, spec, spec.output_scale)


def _check_output_scale(path: Path, spec: WorkflowSpec, scale: OutputScale) -> None:
    image = spec.inputs.get(scale.of)
    if image is None or image.type not in ("image", "mask"):
        raise WorkflowError(f"{path}: output_scale.of '{scale.of}' is not an image input")
    for by in scale.by:
        if not isinstance(by, str):
            continue
        factor = spec.inputs.get(by)
        if factor is None or factor.type not in ("int", "float") or factor.default is None:
            raise WorkflowError(
                f"{path}: output_scale.by '{by}' is not a number input with a default"
            )


def validate_against_object_info(
    spec: WorkflowSpec, object_info: dict[str, Any], *, server: str = "the server"
) -> None:
    """Check a workflow against a server's ``/object_info``, so that it is refused before a job.

    Every node class must exist; every mapped input must be one of its class's inputs, of
    the matching type and, for numbers, within the class's limits; image and mask inputs
    must map to a file-name field of a loader node. Every choice the graph (or an input's
    default) makes must be among the options the server lists: ComfyUI lists the model
    files it has installed as a loader's options (``ckpt_name: [[], …]`` when it has none),
    so a workflow whose model is missing is caught here rather than by a failed submit.
    Choices are declared three ways: a bare list (``[["euler", …], {…}]``), ``"COMBO"``
    with ``options``, and ``"COMFY_DYNAMICCOMBO_V3"`` whose options are ``{"key", "inputs"}``
    with the chosen key's own inputs under dotted names (``format.codec``).

    Args:
        spec: The workflow.
        object_info: The server's ``/object_info``.
        server: Who answered it, for the messages (its URL).

    Raises:
        WorkflowError: Naming the workflow's file, node, input and what does not match.
    """
    where = spec.source.with_suffix(".yaml")
    missing = sorted(spec.class_types() - object_info.keys())
    if missing:
        raise WorkflowError(f"{spec.source}: node classes not on {server}: {missing}")
    for node_id, node in spec.graph.items():
        class_type = node["class_type"]
        inputs = object_info[class_type].get("input", {})
        given = {field.split(".", 1)[0] for field in node["inputs"]}
        if absent := sorted(inputs.get("required", {}).keys() - given):
            raise WorkflowError(
                f"{spec.source}: node {node_id} ({class_type}) lacks required inputs {absent}"
            )
    for name, item in spec.inputs.items():
        class_type = spec.graph[item.node]["class_type"]
        declared = _merged(object_info[class_type].get("input", {}))
        field = item.field.split(".", 1)[0]  # dotted names (format.codec) belong to `format`
        if field not in declared:
            raise WorkflowError(
                f"{where}: input '{name}' maps to '{item.field}', which {class_type} does not "
                f"have (it has {sorted(declared)})"
            )
        declaration = _declaration(declared, spec.graph[item.node]["inputs"], item.field)
        if declaration is None:
            continue  # under a choice the server does not offer: refused by _check_choices
        kind, options = declaration[0], _options(declaration)
        is_choice = isinstance(kind, list) or kind in _CHOICE_TYPES
        if item.type in ("image", "mask"):
            if not is_choice:
                raise WorkflowError(
                    f"{where}: input '{name}' ({item.type}) maps to {class_type}.{field}, "
                    f"which is {kind}, not a file chooser"
                )
        elif kind != _COMFY_TYPES[item.type] and not (is_choice and item.type == "string"):
            raise WorkflowError(
                f"{where}: input '{name}' is {item.type} but {class_type}.{field} is {kind}"
            )
        for bound, limit, outside in (
            ("minimum", options.get("min"), lambda mine, theirs: mine < theirs),
            ("maximum", options.get("max"), lambda mine, theirs: mine > theirs),
        ):
            mine = getattr(item, bound)
            if limit is not None and mine is not None and outside(mine, limit):
                raise WorkflowError(
                    f"{where}: input '{name}' {bound} {mine} is outside what "
                    f"{class_type}.{field} accepts ({limit})"
                )
        offered = _choices(declaration)
        if item.choices is not None and (offered is None or set(item.choices) - set(offered)):
            extra = sorted(set(item.choices) - set(offered or []))
            raise WorkflowError(
                f"{where}: input '{name}' lists choices {extra} that {class_type}.{field} "
                f"on {server} does not offer"
            )

    _check_choices(spec, object_info, server)


def _check_choices(spec: WorkflowSpec, object_info: dict[str, Any], server: str) -> None:
    """Every choice the graph or an input's default makes must be one the server offers."""
    values = {node_id: dict(node["inputs"]) for node_id, node in spec.graph.items()}
    unknown: set[tuple[str, str]] = set()  # set when the workflow runs (uploads included)
    defaults: dict[tuple[str, str], str] = {}
    for name, item in spec.inputs.items():
        if item.default is None or item.type in ("image", "mask"):
            unknown.add((item.node, item.field))
        else:
            values[item.node][item.field] = item.default
            defaults[item.node, item.field] = f" (the default of input '{name}')"
    for node_id, node in spec.graph.items():
        class_type = node["class_type"]
        declared = _merged(object_info[class_type].get("input", {}))
        for field, value in values[node_id].items():
            if _is_link(value) or (node_id, field) in unknown:
                continue
            declaration = _declaration(declared, values[node_id], field)
            choices = None if declaration is None else _choices(declaration)
            if choices is not None and value not in choices:
                upload = bool(_options(declaration).get("image_upload"))
                raise WorkflowError(
                    f"{spec.source}: node {node_id} ({class_type}) input '{field}'"
                    f"{defaults.get((node_id, field), '')}: "
                    + _not_offered(value, choices, server, upload=upload)
                )


def _merged(inputs: dict[str, Any]) -> dict[str, list[Any]]:
    return {**inputs.get("required", {}), **inputs.get("optional", {})}


def _options(declaration: list[Any]) -> dict[str, Any]:
    return declaration[1] if len(declaration) > 1 and isinstance(declaration[1], dict) else {}


def _declaration(
    declared: dict[str, list[Any]], values: dict[str, Any], field: str
) -> list[Any] | None:
    """The declaration of ``field``; a dotted name is an input of its parent's chosen option.

    None when the parent's value is not one of its options (that value is refused itself).
    """
    head, *rest = field.split(".")
    declaration, path = declared.get(head), head
    for part in rest:
        if declaration is None or declaration[0] != "COMFY_DYNAMICCOMBO_V3":
            return None
        chosen = next(
            (o for o in _options(declaration).get("options", []) if o["key"] == values.get(path)),
            None,
        )
        if chosen is None:
            return None
        declaration, path = _merged(chosen.get("inputs", {})).get(part), f"{path}.{part}"
    return declaration


def _choices(declaration: list[Any]) -> list[Any] | None:
    """The values a choice input accepts; None for other inputs and unlisted (remote) choices."""
    kind, options = declaration[0], _options(declaration)
    if isinstance(kind, list):
        return kind
    if kind == "COMBO":
        return options.get("options")
    if kind == "COMFY_DYNAMICCOMBO_V3":
        return [option["key"] for option in options.get("options", [])]
    return None


def _not_offered(value: object, choices: list[Any], server: str, *, upload: bool) -> str:
    if isinstance(value, str) and _FILE_NAME.fullmatch(value):
        what = "input file" if upload else "model file"
        listed = ", ".join(map(str, choices)) or "none"
        return f"{what} '{value}' is not installed on {server} (installed: {listed})"
    return f"{value!r} is not one of the options on {server}: {choices}"


_SUFFIXES = (".json", ".yaml", ".yml")
# A file changed less than this before its stat was taken may change again within the
# file system's timestamp granularity without its stat changing ("racy git"); such a
# snapshot is not trusted, and the next call reads the folder again.
_RACY_NS = 2_000_000_000

_Snapshot = tuple[tuple[str, int, int, int, int], ...]


class WatchedCatalogue:
    """A workflow folder's workflows, read again only when one of its files changed.

    Each call costs one directory scan, so a new or changed file is used at once without a
    restart, and an unchanged folder is not parsed again. Thread-safe.
    """

    def __init__(self, folder: Path = COMFY_WORKFLOWS) -> None:
        self.folder = Path(folder).resolve()
        self._specs: dict[str, WorkflowSpec] = {}
        self._snapshot: _Snapshot | None = None
        self._racy = True
        self._lock = threading.Lock()

    def current(self) -> dict[str, WorkflowSpec]:
        """The workflows as the folder holds them now, by name (do not change the mapping).

        Raises:
            WorkflowError: A file is broken (the folder is read again on the next call).
        """
        with self._lock:
            taken_ns = time.time_ns()
            snapshot = _snapshot(self.folder)
            if snapshot != self._snapshot or self._racy:
                self._specs = load_workflows(self.folder)  # raises: nothing changes
                self._snapshot = snapshot
                self._racy = any(
                    max(mtime, ctime) >= taken_ns - _RACY_NS for _, _, mtime, ctime, _ in snapshot
                )
            return self._specs


def _snapshot(folder: Path) -> _Snapshot:
    """Name, size, change times and inode of every workflow file, sorted.

    One directory scan (not a glob per pattern): this runs on every call. The inode-change
    time (``ctime``) moves on every write and cannot be set back, so a rewrite is seen even
    when the modification time is restored (``cp -p``, ``rsync -t``).
    """
    entries = []
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as scan:
        for entry in scan:
            if entry.name.endswith(_SUFFIXES):
                stat = entry.stat()
                entries.append(
                    (entry.name, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
                )
    return tuple(sorted(entries))
