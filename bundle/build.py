"""Build the Claude Desktop bundle: `uv run python bundle/build.py` writes dist/retab-mcp-<version>.mcpb.

The bundle is of MCPB's `uv` type: it carries the project (pyproject.toml, uv.lock, the package's source and
a two-line `server/main.py`), not its dependencies. The host's uv picks a Python the manifest allows and
installs the locked dependencies' wheels for the user's platform and that Python, so one bundle serves every
platform and Python it names (tests/test_bundle.py launches it on each Python this machine has and resolves
the lock's wheels for each platform). The manifest's tool list is filled from the server's own catalog, so
it cannot drift. The manifest is validated and the bundle packed with the real `mcpb` (npm
@anthropic-ai/mcpb, installed by `npm ci` in interop/).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "dist"
MAIN = "from retab_mcp.entry.launch import main\n\nmain()\n"
# What a uv project needs to install itself: the build file and lock, the files the build file names.
PROJECT_FILES = ("pyproject.toml", "uv.lock", "README.md", "LICENSE")


def mcpb() -> str:
    tool = ROOT / "interop" / "node_modules" / ".bin" / "mcpb"
    if not tool.exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT / "interop", check=True)
    return str(tool)


def listed_tools() -> list[dict[str, str]]:
    sys.path.insert(0, str(ROOT / "server"))
    from retab_mcp.tools.registry import catalog

    # The tools a model is offered (not the ones only the run view calls), with their titles.
    return [{"name": spec.name, "description": spec.title} for spec in catalog() if spec.view != "app_only"]


def stage(into: Path) -> dict[str, object]:
    manifest = json.loads((ROOT / "bundle" / "manifest.json").read_text())
    manifest["tools"] = listed_tools()
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, into / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "server" / "retab_mcp", into / "server" / "retab_mcp", ignore=ignore)
    (into / "server" / "main.py").write_text(MAIN)
    (into / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def build(dist: Path = DIST) -> Path:
    """The bundle, staged and packed in `dist` (the tests give each run a directory of its own)."""
    staged = dist / "bundle"
    manifest = stage(staged)
    tool = mcpb()
    subprocess.run([tool, "validate", str(staged / "manifest.json")], check=True)
    out = dist / f"retab-mcp-{manifest['version']}.mcpb"
    out.unlink(missing_ok=True)
    subprocess.run([tool, "pack", str(staged), str(out)], check=True, stdout=subprocess.DEVNULL)
    return out


if __name__ == "__main__":
    print(build())
