"""The host configs people paste (README, mcp.json, the bundle's manifest) launch what the CLI accepts and
set only variables the server reads."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from retab_mcp.base.config import _ENVIRONMENT  # pyright: ignore[reportPrivateUsage]
from retab_mcp.entry.cli.parser import build_parser

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
READ_VARIABLES = {variable for variable, _ in _ENVIRONMENT.values()}


def host_section() -> str:
    return README[README.index("## Use it from a host") : README.index("## Configuration")]


def server_arguments(command: str, args: list[str]) -> list[str]:
    """What reaches retab-mcp itself from a host's command and args (`uv run [--flags] retab-mcp ...`)."""
    if command != "uv":
        return args
    assert args[0] == "run" and "retab-mcp" in args, args
    return args[args.index("retab-mcp") + 1 :]


def entries(config: dict[str, Any]) -> list[dict[str, Any]]:
    return list((config.get("mcpServers") or config.get("servers") or {}).values())


def check_entry(entry: dict[str, Any]) -> None:
    build_parser().parse_args(server_arguments(entry["command"], entry["args"]))  # exits 2 on a wrong flag
    assert set(entry.get("env", {})) <= READ_VARIABLES, entry


def test_every_json_config_in_the_readme_and_mcp_json_launches_what_the_cli_accepts() -> None:
    blocks = re.findall(r"```json\n(.*?)```", host_section(), re.S)
    configs = [json.loads(block) for block in blocks] + [json.loads((ROOT / "mcp.json").read_text())]
    checked = [entry for config in configs for entry in entries(config)]
    assert len(checked) >= 4  # Claude Desktop/Cursor, VS Code, and mcp.json's two
    for entry in checked:
        check_entry(entry)


def test_the_shell_lines_in_the_readme_launch_what_the_cli_accepts() -> None:
    lines = re.findall(r"```sh\n(.*?)```", host_section(), re.S)
    commands = [shlex.split(line) for block in lines for line in block.strip().splitlines()]
    claude = next(c for c in commands if c[:3] == ["claude", "mcp", "add"])
    env = [claude[i + 1].split("=", 1)[0] for i, word in enumerate(claude) if word == "--env"]
    assert set(env) <= READ_VARIABLES
    after = claude[claude.index("--") + 1 :]
    build_parser().parse_args(server_arguments(after[0], after[1:]))
    inspector = next(c for c in commands if "@modelcontextprotocol/inspector" in c)
    build_parser().parse_args(server_arguments("uv", inspector[inspector.index("uv") + 1 :]))


def test_the_bundle_sets_only_variables_the_server_reads_from_its_user_config() -> None:
    manifest = json.loads((ROOT / "bundle" / "manifest.json").read_text())
    config = manifest["server"]["mcp_config"]
    assert set(config["env"]) - {"PYTHONPATH"} <= READ_VARIABLES
    referenced = {m for value in config["env"].values() for m in re.findall(r"\$\{user_config\.(\w+)\}", value)}
    assert referenced == set(manifest["user_config"])


def test_every_variable_the_server_reads_is_in_the_configuration_table() -> None:
    table = README[README.index("## Configuration") : README.index("## Command line")]
    assert {variable for variable in READ_VARIABLES if f"| `{variable}` |" not in table} == set()


def test_the_team_host_configs_send_the_key_header_the_server_reads() -> None:
    team = README[README.index("## Serving a team") : README.index("## How waiting works")]
    blocks = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", team, re.DOTALL)]
    assert len(blocks) == 2
    for config in blocks:
        (entry,) = (config.get("mcpServers") or config.get("servers")).values()
        assert entry["url"].endswith("/mcp")
        assert set(entry["headers"]) == {"X-Retab-Api-Key"}
    assert '--header "X-Retab-Api-Key: ' in team
