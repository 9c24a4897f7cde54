"""Build the Claude Desktop bundle: `uv run python bundle/build.py` writes dist/retab-mcp-<version>.mcpb.

The bundle is `manifest.json`, a two-line `server/main.py`, and the wheel with its dependencies in
`server/lib` (installed by uv for this machine's platform and Python: build it where it will run).
The manifest is validated and the bundle packed with the real `mcpb` (npm @anthropic-ai/mcpb, installed
by `npm ci` in interop/).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "dist" / "bundle"
MAIN = "import sys\n\nfrom retab_mcp.entry.cli import main\n\nsys.exit(main())\n"


def mcpb() -> str:
    tool = ROOT / "interop" / "node_modules" / ".bin" / "mcpb"
    if not tool.exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT / "interop", check=True)
    return str(tool)


def build() -> Path:
    manifest = json.loads((ROOT / "bundle" / "manifest.json").read_text())
    shutil.rmtree(STAGE, ignore_errors=True)
    (STAGE / "server" / "lib").mkdir(parents=True)
    wheels = ROOT / "dist" / "wheel"
    shutil.rmtree(wheels, ignore_errors=True)
    subprocess.run(["uv", "build", "--wheel", "--quiet", "--out-dir", str(wheels)], cwd=ROOT, check=True)
    (wheel,) = wheels.glob("*.whl")
    target = ["--target", str(STAGE / "server" / "lib"), "--python", sys.executable]
    subprocess.run(["uv", "pip", "install", "--quiet", *target, str(wheel)], check=True)
    (STAGE / "server" / "main.py").write_text(MAIN)
    (STAGE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    tool = mcpb()
    subprocess.run([tool, "validate", str(STAGE / "manifest.json")], check=True)
    out = ROOT / "dist" / f"retab-mcp-{manifest['version']}.mcpb"
    out.unlink(missing_ok=True)
    subprocess.run([tool, "pack", str(STAGE), str(out)], check=True, stdout=subprocess.DEVNULL)
    return out


if __name__ == "__main__":
    print(build())
