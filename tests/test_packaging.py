"""The packages as a user installs them: built with `uv build`, the wheel installed with pip into a fresh
venv (no uv), its console script run as a host would run it."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import anyio
import pydantic
import pytest
from mcp import Client, StdioServerParameters

from retab_mcp import __version__

from .helpers import READ_TOOLS

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).parents[1]
NOT_THE_PRODUCT = re.compile(r"(^|/)(tests|benchmarks|interop|\.hypothesis|\.venv|__pycache__)/|\.pyc$")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("dist")
    uv = shutil.which("uv")
    assert uv is not None, "uv builds the packages (the README's set-up installs it)"
    subprocess.run([uv, "build", "--quiet", "--out-dir", str(out)], cwd=ROOT, check=True)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return wheel, sdist


def test_the_packages_hold_the_product_and_nothing_else(built: tuple[Path, Path]) -> None:
    wheel, sdist = built
    with tarfile.open(sdist) as archive:
        in_sdist = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = archive.namelist()
        metadata = archive.read(f"retab_mcp-{__version__}.dist-info/METADATA").decode()
    assert not [name for name in in_sdist + in_wheel if NOT_THE_PRODUCT.search(name)]
    assert {"LICENSE", "README.md", "pyproject.toml", "server/retab_mcp/entry/cli/__init__.py"} <= set(in_sdist)
    assert "retab_mcp/py.typed" in in_wheel and "retab_mcp/simulator/app.py" in in_wheel
    assert "retab_mcp/tools/prebuilt.json" in in_wheel  # the tools' kept schemas (tools/prebuilt.py)
    assert any(name.endswith("licenses/LICENSE") for name in in_wheel)
    assert "License-Expression: MIT" in metadata and "Classifier: " in metadata and "Keywords: " in metadata


KEPT_IN_USE = """
import importlib.metadata, json, pydantic
from retab_mcp.tools import prebuilt
print(json.dumps([prebuilt.kept() is not None, importlib.metadata.version("mcp"), pydantic.VERSION]))
"""


async def test_the_wheel_installed_with_pip_in_a_fresh_venv_runs(built: tuple[Path, Path], tmp_path: Path) -> None:
    wheel, _ = built
    venv = tmp_path / "venv"
    with anyio.fail_after(300):
        await anyio.run_process([sys.executable, "-m", "venv", str(venv)])
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        await anyio.run_process([*pip, str(wheel)])
        script = str(venv / "bin" / "retab-mcp")
        version = await anyio.run_process([script, "--version"])
        demo = await anyio.run_process([script, "demo"], check=False)
        async with Client(StdioServerParameters(command=script, args=["--demo"])) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
        kept = await anyio.run_process([str(venv / "bin" / "python"), "-c", KEPT_IN_USE])
    assert version.stdout.decode().strip() == f"retab-mcp {__version__}"
    # The tools' kept schemas travel in the wheel and are used by it, unless pip chose another SDK or pydantic.
    in_use, *versions = json.loads(kept.stdout)
    assert in_use or versions != [importlib.metadata.version("mcp"), pydantic.VERSION]
    assert demo.returncode == 0 and "Verdict: improved" in demo.stdout.decode(), demo.stderr.decode()[-2000:]
    assert tools == READ_TOOLS
