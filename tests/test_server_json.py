"""server.json, the MCP Registry's description of this server, against the constraints the registry's
schema (2025-12-11, server.schema.json) states for each field it uses, and against what the server reads."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from retab_mcp import __version__
from retab_mcp.base.config import _ENVIRONMENT  # pyright: ignore[reportPrivateUsage]

ROOT = Path(__file__).parents[1]
SERVER: dict[str, Any] = json.loads((ROOT / "server.json").read_text())
SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
RANGE = re.compile(r"[\^~<>=*x]|\.x|\.\*")  # version ranges, which the schema rejects


def test_the_top_level_fields_meet_the_registry_schema() -> None:
    assert SERVER["$schema"] == SCHEMA_URL
    assert set(SERVER) <= {"$schema", "name", "title", "description", "version", "packages"}
    assert re.fullmatch(r"[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+", SERVER["name"]) and 3 <= len(SERVER["name"]) <= 200
    assert 1 <= len(SERVER["description"]) <= 100
    assert 1 <= len(SERVER["title"]) <= 100
    assert not RANGE.search(SERVER["version"]) and len(SERVER["version"]) <= 255


def test_the_package_is_this_one_at_exactly_this_version() -> None:
    (package,) = SERVER["packages"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert package["registryType"] == "pypi" and package["identifier"] == project["name"] == "retab-mcp"
    assert package["version"] == SERVER["version"] == project["version"] == __version__
    assert package["version"] != "latest" and not RANGE.search(package["version"])
    assert package["transport"] == {"type": "stdio"}
    assert package["registryBaseUrl"] == "https://pypi.org"


def test_every_environment_variable_is_one_the_server_reads_and_well_formed() -> None:
    (package,) = SERVER["packages"]
    read = {variable for variable, _ in _ENVIRONMENT.values()}
    fields = {"name", "description", "isRequired", "isSecret", "format", "default", "placeholder"}
    for variable in package["environmentVariables"]:
        assert variable["name"] in read, variable["name"]
        assert set(variable) <= fields and variable["description"]
        assert isinstance(variable["isRequired"], bool) and isinstance(variable["isSecret"], bool)
        assert variable.get("format", "string") in ("string", "number", "boolean", "filepath")
        assert all(isinstance(variable[k], str) for k in ("default", "placeholder") if k in variable)
    secrets = {v["name"] for v in package["environmentVariables"] if v["isSecret"]}
    assert secrets == {"RETAB_API_KEY"}
