"""The tools' schemas, derived once and kept: what `tools/list` shows of each tool's arguments and results.

The SDK derives each tool's argument schema and output schema with pydantic when the tool is registered:
about 100 ms of CPU for this server's tools, a tenth of its start (BENCHMARKS.md 'Start-up'), paid before a
host sees the listing. Those schemas follow from the sources alone, so `prebuilt.json` beside this module
keeps them, made by `python -m retab_mcp.tools.prebuilt --write`, and a server starts from it: each tool is
registered with its schemas as kept, and made the SDK's way at its first call (a few milliseconds, once).

The file is used only when it was made from the code in hand: it carries a digest of this package's
sources, of the SDK's code that derives the schemas and of pydantic's version; any difference (an edited
view, another SDK) and the server builds every tool as the SDK does, with the same listing, only slower.
tests/test_prebuilt.py holds that the file in the repository is the one the sources make, and that a tool
registered from it lists and answers as one the SDK made.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mcp.server.mcpserver.tools.base as sdk_tools
import mcp.server.mcpserver.utilities.func_metadata as sdk_func_metadata
import pydantic
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.types import ToolAnnotations
from pydantic import PrivateAttr

from .registry import ToolSpec, View, catalog

PACKAGE = Path(__file__).resolve().parents[1]
KEPT = Path(__file__).with_suffix(".json")
# The simulator and the run view's assets make no schema a tool lists.
NOT_SOURCES = ("simulator",)


@dataclass(frozen=True)
class Entry:
    """What the file keeps of one tool: its registry entry (registry.py) and the schemas the SDK derived."""

    name: str
    title: str
    description: str
    annotations: ToolAnnotations
    writes: bool
    view: View
    parameters: dict[str, Any]
    output_schema: dict[str, Any] | None
    context_kwarg: str | None
    is_async: bool

    @classmethod
    def made(cls, spec: ToolSpec) -> Entry:
        tool = Tool.from_function(spec.fn, name=spec.name, title=spec.title, description=spec.description)
        return cls(
            spec.name,
            spec.title,
            spec.description,
            spec.annotations,
            spec.writes,
            spec.view,
            tool.parameters,
            tool.output_schema,
            tool.context_kwarg,
            tool.is_async,
        )

    def dump(self) -> dict[str, Any]:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**fields, "annotations": self.annotations.model_dump(mode="json", exclude_unset=True)}

    @classmethod
    def load(cls, data: dict[str, Any]) -> Entry:
        fields: dict[str, Any] = dict(data)
        fields["annotations"] = ToolAnnotations.model_validate(data["annotations"])
        return cls(**fields)


def digest() -> str:
    """What the kept schemas follow from: this package's Python sources, the SDK's code that derives a
    tool's schemas, pydantic's version and Python's."""
    sha = hashlib.sha256()
    for path in _sources():
        sha.update(path.removeprefix(str(PACKAGE)).encode())
        with open(path, "rb") as source:
            sha.update(source.read())
    for module in (sdk_tools, sdk_func_metadata):
        with open(module.__file__ or "", "rb") as source:
            sha.update(source.read())
    sha.update(f"{pydantic.VERSION} {sys.version_info[:2]}".encode())
    return sha.hexdigest()


def _sources() -> list[str]:
    """The package's .py files but the simulator's, in a fixed order (os.walk: pathlib's glob costs more
    than the hashing at start-up)."""
    found: list[str] = []
    for folder, subfolders, files in os.walk(PACKAGE):
        subfolders[:] = [name for name in subfolders if name not in NOT_SOURCES and name != "__pycache__"]
        found += (os.path.join(folder, name) for name in files if name.endswith(".py"))
    return sorted(found)


def kept() -> list[Entry] | None:
    """Every tool as kept, in listing order, if the file was made from the code in hand; else None."""
    try:
        data = json.loads(KEPT.read_text())
        if data["digest"] != digest():
            return None
        return [Entry.load(entry) for entry in data["tools"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def tools(allow_writes: bool, meta_of: Callable[[View], dict[str, Any] | None]) -> list[Tool]:
    """The tools to register, in listing order (registry.catalog's): from the file when it is current, else
    made the SDK's way from their functions. Tools that write only with `allow_writes`."""
    entries = kept()
    if entries is None:
        return [
            Tool.from_function(
                spec.fn,
                name=spec.name,
                title=spec.title,
                description=spec.description,
                annotations=spec.annotations,
                meta=meta_of(spec.view),
            )
            for spec in catalog()
            if allow_writes or not spec.writes
        ]
    return [PrebuiltTool.of(entry, meta_of(entry.view)) for entry in entries if allow_writes or not entry.writes]


class PrebuiltTool(Tool):
    """A tool registered with its schemas as kept: listed at once, made the SDK's way at its first call.

    The listing reads `parameters` and `output_schema` (held by a stand-in `fn_metadata`); a call finds the
    function (importing its family module) and runs the tool the SDK makes of it, so validation, conversion
    and errors are the SDK's own."""

    _made: Tool | None = PrivateAttr(default=None)

    @classmethod
    def of(cls, entry: Entry, meta: dict[str, Any] | None) -> PrebuiltTool:
        return cls(
            fn=_not_made,
            name=entry.name,
            title=entry.title,
            description=entry.description,
            parameters=entry.parameters,
            fn_metadata=FuncMetadata(arg_model=ArgModelBase, output_schema=entry.output_schema),
            is_async=entry.is_async,
            context_kwarg=entry.context_kwarg,
            annotations=entry.annotations,
            meta=meta,
        )

    def made(self) -> Tool:
        """The tool as the SDK makes it from its function (once: no await between the check and the set)."""
        if self._made is None:
            fn = next(spec.fn for spec in catalog() if spec.name == self.name)  # imports the tool's family
            self._made = Tool.from_function(
                fn,
                name=self.name,
                title=self.title,
                description=self.description,
                annotations=self.annotations,
                meta=self.meta,
            )
        return self._made

    async def run(self, arguments: dict[str, Any], context: Any, convert_result: bool = False) -> Any:
        return await self.made().run(arguments, context, convert_result=convert_result)


def _not_made(**_: Any) -> Any:  # pragma: no cover - PrebuiltTool.run calls the made tool, never this
    raise RuntimeError("a prebuilt tool runs through the tool the SDK makes of its function")


def write() -> None:
    """Remake prebuilt.json from the sources in hand."""
    entries = [Entry.made(spec).dump() for spec in catalog()]
    KEPT.write_text(json.dumps({"digest": digest(), "tools": entries}, indent=1) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m retab_mcp.tools.prebuilt --write")
    write()
    print(f"wrote {KEPT.relative_to(PACKAGE.parents[1])}")
