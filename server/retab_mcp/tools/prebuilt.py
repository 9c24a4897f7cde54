"""The tools' schemas, derived once and kept: what `tools/list` shows of each tool's arguments and results.

The SDK derives each tool's argument schema and output schema with pydantic when the tool is registered:
about 100 ms of CPU for this server's tools, paid before a host sees the listing, and the tool families
(views, readers) imported to find the functions. Those schemas follow from the sources and the versions of
the SDK and pydantic alone, so `prebuilt.json` beside this module keeps them, made by
`python -m retab_mcp.tools.prebuilt --write`, and a server starts from it: each tool is registered with its
schemas as kept, and at its first call its family module is imported and the tool made the SDK's way (5 to
30 ms of CPU for the first tool of a family, once; BENCHMARKS.md 'Start-up' has the figures).

The file is used only when it was made from the code in hand: it carries, for each Python minor version
it was made on (3.11 to 3.13: the bundle runs on any of them), a digest of this package's sources, of the
SDK's code that shapes a tool's schemas and of the versions of the SDK and the typing packages it derives
them with; any difference (an edited view, another SDK, a Python it was not made on) and the server makes
every tool as the SDK does, with the same listing, only slower (a debug line says so).
tests/test_prebuilt.py holds that the file in the repository is the one the sources make, and that a server
from it lists and answers as one whose tools the SDK made.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.metadata
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mcp.server.mcpserver.resolve as sdk_resolve
import mcp.server.mcpserver.tools.base as sdk_tools
import mcp.server.mcpserver.utilities.context_injection as sdk_context_injection
import mcp.server.mcpserver.utilities.func_metadata as sdk_func_metadata
import pydantic
import pydantic_core
from mcp.server.mcpserver.exceptions import UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.types import ToolAnnotations
from pydantic import PrivateAttr

from .registry import ToolSpec, View, catalog

LOG = logging.getLogger(__name__)
PACKAGE = Path(__file__).resolve().parents[1]
KEPT = Path(__file__).with_suffix(".json")
# The simulator and the run view's assets make no schema a tool lists.
NOT_SOURCES = ("simulator",)
# What else shapes a tool's schemas: the SDK's code that derives them (which parameters it leaves out, the
# schema of the arguments and of the result) and the packages it derives them with.
SDK_SCHEMA_CODE = (sdk_tools, sdk_func_metadata, sdk_context_injection, sdk_resolve)
SCHEMA_PACKAGES = ("mcp", "mcp-types", "typing-extensions", "typing-inspection")  # and pydantic's, below


@dataclass(frozen=True)
class Entry:
    """What the file keeps of one tool: its registry entry (registry.py) and the schemas the SDK derived."""

    name: str
    module: str  # where its function is: imported at its first call
    function: str
    title: str
    description: str
    annotations: ToolAnnotations
    writes: bool
    view: View
    parameters: dict[str, Any]
    output_schema: dict[str, Any] | None

    @classmethod
    def made(cls, spec: ToolSpec) -> Entry:
        tool = _made(spec.fn, spec.name, spec.title, spec.description, spec.annotations)
        return cls(
            spec.name,
            spec.fn.__module__,
            spec.fn.__name__,
            spec.title,
            spec.description,
            spec.annotations,
            spec.writes,
            spec.view,
            tool.parameters,
            tool.output_schema,
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
    """What the kept schemas follow from (SDK_SCHEMA_CODE, SCHEMA_PACKAGES above, this package's sources)."""
    sha = hashlib.sha256()
    for relative, path in _sources():
        sha.update(relative.encode())
        with open(path, "rb") as source:
            sha.update(source.read())
    for module in SDK_SCHEMA_CODE:
        with open(module.__file__ or "", "rb") as source:
            sha.update(source.read())
    for package in SCHEMA_PACKAGES:
        sha.update(f"{package} {importlib.metadata.version(package)}".encode())
    sha.update(f"pydantic {pydantic.VERSION} {pydantic_core.__version__}".encode())  # no metadata lookup: 3 ms
    sha.update(f"python {sys.version_info[0]}.{sys.version_info[1]}".encode())
    return sha.hexdigest()


def _sources() -> list[tuple[str, str]]:
    """(path within the package, with /, and path) of the package's .py files but the simulator's, in a fixed
    order (os.walk: pathlib's glob costs more than the hashing at start-up)."""
    found: list[tuple[str, str]] = []
    for folder, subfolders, files in os.walk(PACKAGE):
        subfolders[:] = [name for name in subfolders if name not in NOT_SOURCES and name != "__pycache__"]
        within = Path(folder).relative_to(PACKAGE).as_posix()
        found += ((f"{within}/{name}", os.path.join(folder, name)) for name in files if name.endswith(".py"))
    return sorted(found)


def kept() -> list[Entry] | None:
    """Every tool as kept, in listing order, if the file was made from the code in hand on this Python; else
    None."""
    try:
        data = json.loads(KEPT.read_text())
        if data["made"].get(python()) != digest():
            LOG.debug("%s was not made from this code: every tool's schemas are derived at start", KEPT.name)
            return None
        return [Entry.load(entry) for entry in data["tools"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        LOG.debug("%s is missing or unreadable: every tool's schemas are derived at start", KEPT.name)
        return None


def python() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def tools(allow_writes: bool, meta_of: Callable[[View], dict[str, Any] | None]) -> tuple[list[Tool], frozenset[str]]:
    """The tools to register, in listing order (registry.catalog's), and the names of all that write (for the
    write-scope checks): from the file when it is current, else made the SDK's way from their functions.
    Tools that write are registered only with `allow_writes`."""
    entries = kept()
    if entries is None:
        specs = catalog()
        made = [
            _made(spec.fn, spec.name, spec.title, spec.description, spec.annotations, meta_of(spec.view))
            for spec in specs
            if allow_writes or not spec.writes
        ]
        return made, frozenset(spec.name for spec in specs if spec.writes)
    listed: list[Tool] = [
        PrebuiltTool.of(entry, meta_of(entry.view)) for entry in entries if allow_writes or not entry.writes
    ]
    return listed, frozenset(entry.name for entry in entries if entry.writes)


class PrebuiltTool(Tool):
    """A tool registered with its schemas as kept: listed at once, made the SDK's way at its first call.

    The listing reads `parameters` and `output_schema` (held by a stand-in `fn_metadata`). Nothing else of it
    is read before a call (the SDK's `Tool.run` reads the rest, and `run` here hands the call to the tool the
    SDK makes), so its `fn`, `fn_metadata`, `is_async`, `context_kwarg` and resolver fields are stand-ins,
    never to be read: a call imports the function's module and runs the made tool, whose validation,
    conversion and errors are the SDK's own."""

    _module: str = PrivateAttr(default="")
    _function: str = PrivateAttr(default="")
    _made: Tool | None = PrivateAttr(default=None)

    @classmethod
    def of(cls, entry: Entry, meta: dict[str, Any] | None) -> PrebuiltTool:
        tool = cls(
            fn=_not_made,
            name=entry.name,
            title=entry.title,
            description=entry.description,
            parameters=entry.parameters,
            fn_metadata=FuncMetadata(arg_model=ArgModelBase, output_schema=entry.output_schema),
            is_async=True,
            context_kwarg=None,
            annotations=entry.annotations,
            meta=meta,
        )
        tool._module, tool._function = entry.module, entry.function
        return tool

    def made(self) -> Tool:
        """The tool as the SDK makes it from its function, once (no await between the check and the set).
        A function that cannot be found or made fails the call as any crash of a tool does."""
        if self._made is None:
            try:
                fn = getattr(importlib.import_module(self._module), self._function)
                self._made = _made(fn, self.name, self.title, self.description, self.annotations, self.meta)
            except Exception as error:
                raise UnexpectedToolError(f"Error executing tool {self.name}") from error
        return self._made

    async def run(self, arguments: dict[str, Any], context: Any, convert_result: bool = False) -> Any:
        return await self.made().run(arguments, context, convert_result=convert_result)


def _made(
    fn: Callable[..., Any],
    name: str,
    title: str | None,
    description: str,
    annotations: ToolAnnotations | None,
    meta: dict[str, Any] | None = None,
) -> Tool:
    """The tool as the SDK makes it from its function: what every path here registers or runs."""
    return Tool.from_function(fn, name=name, title=title, description=description, annotations=annotations, meta=meta)


def _not_made(**_: Any) -> Any:  # pragma: no cover - PrebuiltTool.run calls the made tool, never this
    raise RuntimeError("a prebuilt tool runs through the tool the SDK makes of its function")


def write() -> str:
    """Remake prebuilt.json from the sources in hand, on this Python; returns the Pythons it is kept for.

    The schemas are one list for every Python, each with its own digest. Made on another Python, schemas
    the same as the file's add that Python's digest to the others' (a digest of older sources never matches,
    so keeping one does no harm); schemas that differ (other sources) start the file again with this Python
    alone."""
    entries = [Entry.made(spec).dump() for spec in catalog()]
    try:
        before = json.loads(KEPT.read_text())
        made: dict[str, str] = dict(before["made"]) if before["tools"] == entries else {}
    except (OSError, ValueError, KeyError, TypeError):
        made = {}
    made[python()] = digest()
    KEPT.write_text(json.dumps({"made": dict(sorted(made.items())), "tools": entries}, indent=1) + "\n")
    return ", ".join(sorted(made))


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m retab_mcp.tools.prebuilt --write")
    print(f"wrote {KEPT.relative_to(PACKAGE.parents[1])}, kept for Python {write()}")
