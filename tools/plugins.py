"""One-file plugins: drop a module in a folder and it exists.

Registries (agents, workflow types) are filled by subclassing; :func:`discover` imports
every module of a package folder so the subclasses run their ``__init_subclass__``. A
module that fails to import, or a name registered twice, stops start-up with an error
naming the file — a plugin never silently disappears.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Generic, TypeVar

from tools.errors import ExpectedFailure

__all__ = ["PluginError", "Registry", "discover", "is_concrete"]

T = TypeVar("T")


class PluginError(ExpectedFailure):
    """A plugin file is broken or clashes with another one."""


def discover(package: str) -> list[str]:
    """Import every module in ``package``'s folder (``_private`` modules excepted).

    Args:
        package: Dotted name of the plugin package, e.g. ``"agents"``.

    Returns:
        The dotted names of the imported modules, sorted.

    Raises:
        PluginError: A module failed to import; the message names its file.
    """
    root = importlib.import_module(package)
    folders = [Path(p) for p in root.__path__]
    names = sorted(
        f"{package}.{info.name}"
        for info in pkgutil.iter_modules([str(f) for f in folders])
        if not info.name.startswith("_")
    )
    for name in names:
        try:
            importlib.import_module(name)
        except PluginError:
            raise
        except Exception as error:
            file = _file_of(name, folders)
            raise PluginError(f"plugin {file} failed to load: {error!r}") from error
    return names


def is_concrete(cls: type) -> bool:
    """Whether ``cls`` implements every abstract method (usable inside ``__init_subclass__``).

    ``inspect.isabstract`` cannot answer there: ``__abstractmethods__`` is only set after
    ``__init_subclass__`` has run.
    """
    return not any(
        getattr(getattr(cls, attribute, None), "__isabstractmethod__", False)
        for attribute in dir(cls)
    )


def _file_of(module: str, folders: list[Path]) -> str:
    stem = module.rsplit(".", 1)[-1]
    for folder in folders:
        for candidate in (folder / f"{stem}.py", folder / stem / "__init__.py"):
            if candidate.exists():
                return str(candidate)
    return module


class Registry(Generic[T]):
    """Named plugin classes of one kind, filled as their modules are imported."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, type[T]] = {}

    def add(self, name: str, cls: type[T]) -> None:
        """Register ``cls`` under ``name``; a second class with the same name is an error."""
        existing = self._entries.get(name)
        same_class = existing is not None and (existing.__module__, existing.__qualname__) == (
            cls.__module__,
            cls.__qualname__,
        )
        if existing is not None and not same_class:
            raise PluginError(
                f"duplicate {self.kind} name '{name}': {inspect.getfile(cls)} "
                f"clashes with {inspect.getfile(existing)}"
            )
        self._entries[name] = cls

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise KeyError(f"unknown {self.kind} '{name}' (known: {known})") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
