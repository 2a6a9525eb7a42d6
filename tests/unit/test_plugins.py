"""Plugin discovery: drop a file in a folder and it exists; a broken file fails loudly by name.

Each test writes a throw-away plugin package under ``tmp_path`` with a unique name, puts
it on ``sys.path`` and removes its modules (and any registrations) afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agents.base import ProductionAgent
from graphs.base import WorkflowType, load_workflow_types
from tools.plugins import PluginError, Registry, discover

REPO_ROOT = Path(__file__).resolve().parents[2]

MakePackage = Callable[[dict[str, str]], tuple[str, Path]]

AGENT_SOURCE = """
from pydantic import BaseModel

from agents.base import ProductionAgent


class Note(BaseModel):
    text: str = ""


class NoteTaker(ProductionAgent):
    \"\"\"Takes a note.\"\"\"

    name = "{name}"
    stage = "{name}"
    artifact = Note

    async def propose(self, state, runtime):
        return Note()
"""

WORKFLOW_SOURCE = """
from langgraph.graph import StateGraph

from agents.base import state_schema
from graphs.base import WorkflowType


class Nothing(WorkflowType):
    \"\"\"Does nothing.\"\"\"

    name = "{name}"
    description = "does nothing"

    def build(self):
        return StateGraph(state_schema())
"""


@pytest.fixture
def make_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakePackage]:
    """Write a uniquely named plugin package under ``tmp_path``; its modules are unloaded after."""
    created: list[str] = []

    def make(modules: dict[str, str]) -> tuple[str, Path]:
        package = f"plugtest_{uuid.uuid4().hex[:12]}"
        folder = tmp_path / package
        folder.mkdir()
        (folder / "__init__.py").write_text("")
        for stem, source in modules.items():
            (folder / f"{stem}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(tmp_path))
        created.append(package)
        return package, folder

    yield make
    for name in [m for m in sys.modules if m.split(".")[0] in created]:
        del sys.modules[name]


@pytest.fixture
def registries() -> Iterator[None]:
    """Snapshot both real registries (fully loaded first) and restore them afterwards."""
    load_workflow_types()
    saved = {
        registry: dict(registry._entries)
        for registry in (ProductionAgent.registry, WorkflowType.registry)
    }
    yield
    for registry, entries in saved.items():
        registry._entries.clear()
        registry._entries.update(entries)


def test_imports_every_public_module_sorted(make_package: MakePackage) -> None:
    package, _ = make_package(
        {
            "zebra": "LOADED = True\n",
            "alpha": "LOADED = True\n",
            "_private": "raise RuntimeError('private modules are not plugins')\n",
        }
    )

    names = discover(package)

    assert names == [f"{package}.alpha", f"{package}.zebra"]
    assert sys.modules[f"{package}.alpha"].LOADED
    assert sys.modules[f"{package}.zebra"].LOADED
    assert f"{package}._private" not in sys.modules


def test_syntax_error_names_the_file(make_package: MakePackage) -> None:
    package, folder = make_package({"good": "X = 1\n", "broken": "def oops(:\n"})

    with pytest.raises(PluginError) as caught:
        discover(package)

    assert str(folder / "broken.py") in str(caught.value)
    assert isinstance(caught.value.__cause__, SyntaxError)


def test_error_at_import_names_the_file(make_package: MakePackage) -> None:
    package, folder = make_package({"broken": "raise ValueError('no model configured')\n"})

    with pytest.raises(PluginError) as caught:
        discover(package)

    message = str(caught.value)
    assert str(folder / "broken.py") in message
    assert "no model configured" in message


def test_broken_plugin_fails_again_on_the_next_discovery(make_package: MakePackage) -> None:
    """A failed module is not cached as loaded: it never silently disappears."""
    package, _ = make_package({"broken": "raise ValueError('still broken')\n"})

    for _ in range(2):
        with pytest.raises(PluginError, match=r"broken\.py"):
            discover(package)


@pytest.mark.parametrize(
    ("source", "base"),
    [(AGENT_SOURCE, ProductionAgent), (WORKFLOW_SOURCE, WorkflowType)],
    ids=["agent", "workflow_type"],
)
@pytest.mark.usefixtures("registries")
def test_duplicate_names_name_both_files(
    make_package: MakePackage, source: str, base: type
) -> None:
    name = f"dup_{uuid.uuid4().hex[:8]}"
    code = source.format(name=name)
    package, folder = make_package({"first": code, "second": code})

    with pytest.raises(PluginError) as caught:
        discover(package)

    message = str(caught.value)
    assert f"'{name}'" in message
    assert str(folder / "first.py") in message
    assert str(folder / "second.py") in message
    assert base.registry.get(name).__module__ == f"{package}.first"


@pytest.mark.usefixtures("registries")
def test_registrations_come_from_discovered_files(make_package: MakePackage) -> None:
    agent, workflow = f"agent_{uuid.uuid4().hex[:8]}", f"flow_{uuid.uuid4().hex[:8]}"
    package, _ = make_package(
        {
            "note_taker": AGENT_SOURCE.format(name=agent),
            "nothing": WORKFLOW_SOURCE.format(name=workflow),
        }
    )
    assert agent not in ProductionAgent.registry

    discover(package)

    assert ProductionAgent.registry.get(agent).__module__ == f"{package}.note_taker"
    assert WorkflowType.registry.get(workflow).__module__ == f"{package}.nothing"


def test_registrations_are_removed_after_a_test() -> None:
    """The ``registries`` fixture really restores: no test package is left registered."""
    leftovers = [
        cls.__module__
        for registry in (ProductionAgent.registry, WorkflowType.registry)
        for cls in registry._entries.values()
        if cls.__module__.startswith("plugtest_")
    ]
    assert leftovers == []


@pytest.mark.usefixtures("registries")
def test_abstract_intermediate_base_is_not_registered(make_package: MakePackage) -> None:
    name = f"abstract_{uuid.uuid4().hex[:8]}"
    package, _ = make_package(
        {
            "critic_base": f"""
            from abc import abstractmethod

            from agents.base import ProductionAgent


            class CriticBase(ProductionAgent):
                \"\"\"Shared by critics; not an agent itself.\"\"\"

                name = "{name}"

                @abstractmethod
                def criteria(self): ...
            """
        }
    )

    discover(package)

    assert name not in ProductionAgent.registry


def test_same_class_registered_again_is_not_a_clash() -> None:
    """Re-importing a module (same module and qualified name) replaces, never clashes."""
    registry: Registry[object] = Registry("widget")

    class Widget:
        pass

    class Impostor:
        pass

    registry.add("widget", Widget)
    registry.add("widget", Widget)
    with pytest.raises(PluginError, match="duplicate widget name 'widget'"):
        registry.add("widget", Impostor)
    assert registry.get("widget") is Widget


def test_get_unknown_name_lists_known_names() -> None:
    registry: Registry[object] = Registry("widget")
    registry.add("sprocket", int)
    registry.add("gear", str)

    with pytest.raises(KeyError) as caught:
        registry.get("cog")

    message = str(caught.value)
    assert "unknown widget 'cog'" in message
    assert "known: gear, sprocket" in message


def test_get_unknown_name_in_empty_registry() -> None:
    with pytest.raises(KeyError, match=r"known: none"):
        Registry("widget").get("cog")


def test_broken_plugin_stops_a_fresh_process(tmp_path: Path) -> None:
    """Start-up in a real interpreter exits non-zero and says which file is broken."""
    package = f"plugtest_{uuid.uuid4().hex[:12]}"
    folder = tmp_path / package
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "fine.py").write_text("X = 1\n")
    (folder / "broken.py").write_text("import does_not_exist_anywhere\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO_ROOT)])}

    result = subprocess.run(
        [sys.executable, "-c", f"from tools.plugins import discover; discover({package!r})"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert "PluginError" in result.stderr
    assert str(folder / "broken.py") in result.stderr
