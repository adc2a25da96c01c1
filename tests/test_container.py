"""What can be checked of the Dockerfile and compose.yaml without a Docker engine: the files they
copy and mount exist, the commands they run exist with those options, the pins agree with
pyproject.toml, the environment names real settings, and the image runs as a non-root user."""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from enso.config import Settings
from flows.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = (REPO / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
DEPENDENCIES = {canonicalize_name(Requirement(d).name): Requirement(d) for d in PYPROJECT["project"]["dependencies"]}
CONSTRAINTS = {canonicalize_name(name): version for name, version in (
    line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines() if line and line[0] != "#")}


def instructions(name: str) -> list[str]:
    """The arguments of every ``name`` instruction, with backslash continuations joined."""
    text = DOCKERFILE.replace("\\\n", " ")
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.*)$", text, flags=re.M)]


def arg_default(name: str) -> str:
    return next(a.split("=", 1)[1] for a in instructions("ARG") if a.startswith(f"{name}="))


def exec_form(command: str | list[str]) -> list[str]:
    return yaml.safe_load(command) if isinstance(command, str) else command


def commands() -> list[list[str]]:
    """Every command the image and compose run (the Dockerfile's CMD and each service's command)."""
    found = [exec_form(c) for c in instructions("CMD")]
    found += [s["command"] for s in COMPOSE["services"].values() if "command" in s]
    return found


def test_every_copy_source_exists_and_is_not_docker_ignored() -> None:
    ignored = [p.strip() for p in (REPO / ".dockerignore").read_text().splitlines() if p.strip()]
    sources = [src for args in instructions("COPY") for src in shlex.split(args)[:-1] if not src.startswith("--")]
    assert sources, "no COPY found"
    for src in sources:
        assert (REPO / src).exists(), f"COPY {src}: not in the repository"
        assert src == "." or not any(fnmatch.fnmatch(src, p) for p in ignored), f"COPY {src} is .dockerignored"
    for needed in ("pyproject.toml", "README.md", "constraints.txt", "flows", "deployments", "db", "enso"):
        assert not any(fnmatch.fnmatch(needed, p) for p in ignored), f"{needed} is .dockerignored"


def test_torch_and_prefect_pins_agree_with_pyproject() -> None:
    torch = DEPENDENCIES["torch"]
    assert str(torch.specifier) == f"=={arg_default('TORCH_VERSION')}", "the Dockerfile's torch is not pyproject's"
    assert arg_default("TORCH_VARIANT") == "cpu"
    assert "torch" not in CONSTRAINTS, "torch is pinned in the Dockerfile (its variant differs per image)"
    for name, requirement in DEPENDENCIES.items():
        if name == "torch":
            continue
        pinned = CONSTRAINTS.get(name)
        assert pinned, f"{name} has no pin in constraints.txt"
        assert requirement.specifier.contains(pinned), f"constraints.txt pins {name}=={pinned}, outside {requirement}"
    assert DEPENDENCIES["prefect"].specifier.contains(CONSTRAINTS["prefect"])
    assert "asyncpg" in DEPENDENCIES  # the Prefect server on PostgreSQL


def test_the_image_runs_as_a_created_non_root_user() -> None:
    users = instructions("USER")
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:")
    assert re.search(rf"useradd\b[^\n]*\b{re.escape(users[-1])}\b", DOCKERFILE.replace("\\\n", " "))
    assert DOCKERFILE.index("USER ") < DOCKERFILE.index("CMD ")


def test_prefect_runs_offline_in_the_image() -> None:
    env = " ".join(instructions("ENV"))
    for setting in ("PREFECT_SERVER_ANALYTICS_ENABLED=false", "DO_NOT_TRACK=1",
                    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120", "PREFECT_HOME=/app/var/prefect"):
        assert setting in env


@pytest.mark.parametrize("command", commands(), ids=lambda c: " ".join(c[:3]))
def test_each_command_exists_with_its_options(command: list[str]) -> None:
    program, *args = command
    assert program == "prefect"
    assert "prefect" in {e.name for e in entry_points(group="console_scripts")}
    subcommand = [a for a in args if not a.startswith("-")][:2]
    help_text = subprocess.run([sys.executable, "-m", "prefect", *subcommand, "--help"], capture_output=True,
                               text=True, timeout=120, env={**os.environ, "COLUMNS": "200"}).stdout
    for option in (a for a in args if a.startswith("--")):
        assert option in help_text, f"`prefect {' '.join(subcommand)}` has no option {option}"
    if "--install-policy" in args:
        policy = args[args.index("--install-policy") + 1]
        assert re.search(rf"choices:[^\]]*\b{policy}\b", help_text.replace("│", " ").replace("\n", " "))


def test_the_enso_commands_the_compose_file_documents_exist() -> None:
    assert PYPROJECT["project"]["scripts"]["enso"] == "flows.cli:main"
    header = (REPO / "compose.yaml").read_text().split("\nx-")[0]
    documented = re.findall(r"cpu-worker (enso [^\n]+)", header)
    assert documented
    for line in documented:
        build_parser().parse_args(shlex.split(line)[1:])


def test_compose_mounts_builds_and_settings() -> None:
    services = COMPOSE["services"]
    built = {s["image"] for s in services.values() if "build" in s}
    for name, service in services.items():
        if service["image"].startswith("enso-forecast:"):
            assert service["image"] in built, f"{name}: nobody builds {service['image']}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name} mounts {source}: not in the repository"
            else:
                assert source in COMPOSE["volumes"], f"{name} mounts undeclared volume {source}"
    settings = {f"ENSO_{field.upper()}" for field in Settings.model_fields}
    for name in (v for s in services.values() for v in s.get("environment", {}) if v.startswith("ENSO_")):
        assert name in settings, f"compose sets {name}, which is no setting"
    gpu = services["gpu-worker"]
    assert gpu["build"]["args"]["TORCH_VARIANT"] != "cpu"
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "--pool" in gpu["command"] and gpu["command"][gpu["command"].index("--pool") + 1] == "gpu"
    assert "asyncpg" in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]


@pytest.mark.faults
def test_compose_publishes_the_unauthenticated_prefect_api_on_loopback_only() -> None:
    for name, service in COMPOSE["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
    assert COMPOSE["services"]["prefect-server"]["ports"] == ["127.0.0.1:4200:4200"]
    assert "PREFECT_SERVER_API_AUTH_STRING" in (REPO / "compose.yaml").read_text()
