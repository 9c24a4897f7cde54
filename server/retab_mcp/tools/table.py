"""The README's tools table, made from the registry: `uv run python -m retab_mcp.tools.table` prints it,
`--write README.md` puts it between the README's `<!-- tools -->` markers. A test holds the README to it, so
the table cannot drift from what the server lists.

Each row: the call with its arguments and defaults (as the listing's input schema has them), what the agent
gets (the tool's `summary`), and an example (its `example`). Tools only the run view calls are not shown.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import anyio

START, END = "<!-- tools -->", "<!-- /tools -->"


def _default(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return str(value)
    return json.dumps(value)


def _call(name: str, schema: dict[str, Any]) -> str:
    properties: dict[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    arguments = [
        key if key in required or "default" not in spec else f"{key}={_default(spec['default'])}"
        for key, spec in properties.items()
    ]
    return f"`{name}({', '.join(arguments)})`"


async def tools_table() -> str:
    from mcp import Client

    from ..base.config import Settings
    from .registry import catalog
    from .server import build_server

    async with Client(build_server(Settings(allow_writes=True))) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    rows = ["| tool | what the agent gets | example |", "|---|---|---|"]
    for spec in catalog():
        if spec.view == "app_only":
            continue
        rows.append(f"| {_call(spec.name, listed[spec.name].input_schema)} | {spec.summary} | `{spec.example}` |")
    return "\n".join(rows)


def with_table(readme: str, table: str) -> str:
    """`readme` with `table` between its markers (which must be there)."""
    pattern = re.compile(re.escape(START) + r"\n.*?\n" + re.escape(END), re.S)
    if not pattern.search(readme):
        raise ValueError(f"the README has no {START} ... {END} markers")
    return pattern.sub(lambda _: f"{START}\n{table}\n{END}", readme)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m retab_mcp.tools.table", description=__doc__)
    parser.add_argument("--write", metavar="README", help="put the table into this file, between its markers")
    target = parser.parse_args().write
    table = anyio.run(tools_table)
    if target is None:
        print(table)
        return
    path = Path(target)
    path.write_text(with_table(path.read_text(), table))


if __name__ == "__main__":
    main()
