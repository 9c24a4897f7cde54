"""The Claude Desktop bundle (MCPB): built and validated with the real `mcpb`, unpacked, and launched exactly
as its manifest says, with the user's configuration substituted as a host does."""

from __future__ import annotations

import json
import os
import re
import runpy
import sys
import zipfile
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from retab_mcp import __version__

from .helpers import READ_TOOLS, WRITE_TOOLS

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).parents[1]
USER_CONFIG = {"api_key": "sk_test_bundle_0123456789", "base_url": "https://api.retab.com", "allow_writes": "true"}


def substituted(value: str, directory: Path) -> str:
    """What a host does to the manifest's strings: ${__dirname} and ${user_config.NAME}."""
    value = value.replace("${__dirname}", str(directory))
    return re.sub(r"\$\{user_config\.(\w+)\}", lambda m: USER_CONFIG[m.group(1)], value)


def outside_this_venv() -> dict[str, str]:
    """The environment of a host: a PATH without this checkout's venv, whose Python has retab_mcp
    installed, so that the bundle must bring its own (server/lib)."""
    venv = str(Path(sys.prefix))
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not p.startswith(venv))
    kept = {name: os.environ[name] for name in ("HOME", "PYENV_ROOT") if name in os.environ}
    return {"PATH": path, **kept}


async def test_the_bundle_launches_as_its_manifest_says_and_lists_its_tools(tmp_path: Path) -> None:
    build: Any = runpy.run_path(str(ROOT / "bundle" / "build.py"))["build"]
    bundle = await anyio.to_thread.run_sync(build)
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["version"] == __version__
    assert manifest["user_config"]["api_key"]["sensitive"] is True
    assert manifest["user_config"]["allow_writes"]["type"] == "boolean"
    config = manifest["server"]["mcp_config"]
    params = StdioServerParameters(
        command=config["command"],
        args=[substituted(arg, tmp_path) for arg in config["args"]],
        env=outside_this_venv() | {name: substituted(value, tmp_path) for name, value in config["env"].items()},
    )
    with anyio.fail_after(60):
        async with Client(params) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
    assert tools == {tool["name"] for tool in manifest["tools"]}
    assert tools == READ_TOOLS | WRITE_TOOLS  # allow_writes substituted
    assert prompts == {prompt["name"] for prompt in manifest["prompts"]}
