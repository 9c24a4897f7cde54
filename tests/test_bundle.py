"""The Claude Desktop bundle (MCPB, `uv` type): built and validated with the real `mcpb`, unpacked, and launched
exactly as its manifest says, with the user's configuration substituted as a host does, on a machine whose
only Python is each of the versions the manifest claims; and its lock resolved to wheels for each platform
it claims."""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from retab_mcp import __version__

from .helpers import READ_TOOLS, WRITE_TOOLS, data_of

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).parents[1]
PYTHONS = ("3.11", "3.12", "3.13")
# What "darwin", "win32" and "linux" stand for: the machines Claude Desktop runs on (Windows on ARM is not
# one the bundle serves: cryptography publishes no wheels for it; the README says so).
PLATFORMS = {
    "darwin": ("x86_64-apple-darwin", "aarch64-apple-darwin"),
    "win32": ("x86_64-pc-windows-msvc",),
    "linux": ("x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"),
}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build: Any = runpy.run_path(str(ROOT / "bundle" / "build.py"))["build"]
    return build(tmp_path_factory.mktemp("dist"))  # each test worker its own: two builds would share dist/


def unpacked(bundle: Path, into: Path) -> dict[str, Any]:
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(into)
    return json.loads((into / "manifest.json").read_text())


def interpreter(version: str) -> Path | None:
    """This machine's CPython `version` (pyenv's, or on PATH), or None."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for found in sorted(pyenv.glob(f"{version}.*/bin/python{version}"), reverse=True):
        return found
    on_path = shutil.which(f"python{version}")
    return Path(on_path) if on_path else None


def a_machine_with_only(python: Path, bin_dir: Path) -> dict[str, str]:
    """The environment of a host on a machine whose only Python is `python`: a PATH holding it and uv, and
    uv told not to look elsewhere (its own managed Pythons) nor to download one."""
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(python)
    uv = shutil.which("uv")
    assert uv, "uv is on PATH (the README's set-up installs it)"
    (bin_dir / "uv").symlink_to(uv)
    # The machine's own settings stay: home, uv's cache, and how it reaches PyPI (certificates, proxies).
    network = ("SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "no_proxy")
    kept = {name: os.environ[name] for name in ("HOME", "UV_CACHE_DIR", *network) if name in os.environ}
    return kept | {"PATH": str(bin_dir), "UV_PYTHON_DOWNLOADS": "never", "UV_PYTHON_PREFERENCE": "only-system"}


def substituted(value: str, directory: Path, user_config: dict[str, str]) -> str:
    """What a host does to the manifest's strings: ${__dirname} and ${user_config.NAME}."""
    value = value.replace("${__dirname}", str(directory))
    return re.sub(r"\$\{user_config\.(\w+)\}", lambda m: user_config[m.group(1)], value)


async def simulated_api() -> tuple[anyio.abc.Process, str]:
    process = await anyio.open_process(
        [sys.executable, "-m", "retab_mcp.simulator", "--port", "0"], stdin=subprocess.DEVNULL
    )
    assert process.stderr is not None
    seen = b""
    with anyio.fail_after(30):
        while (found := re.search(rb"on (http://\S+)", seen)) is None:
            seen += await process.stderr.receive()
    return process, found.group(1).decode()


def test_the_manifest_claims_what_the_tests_try(bundle: Path, tmp_path: Path) -> None:
    manifest = unpacked(bundle, tmp_path)
    assert manifest["version"] == __version__
    assert manifest["server"]["type"] == "uv"
    assert not (tmp_path / "server" / "lib").exists()  # MCPB: a uv bundle carries no dependencies
    assert manifest["compatibility"]["runtimes"]["python"] == ">=3.11,<3.14"
    assert "--python" in manifest["server"]["mcp_config"]["args"]
    assert (
        manifest["server"]["mcp_config"]["args"][manifest["server"]["mcp_config"]["args"].index("--python") + 1]
        == (manifest["compatibility"]["runtimes"]["python"])
    )
    assert set(manifest["compatibility"]["platforms"]) == set(PLATFORMS)
    assert manifest["user_config"]["api_key"]["sensitive"] is True
    assert manifest["user_config"]["allow_writes"]["type"] == "boolean"
    assert {tool["name"] for tool in manifest["tools"]} == READ_TOOLS | WRITE_TOOLS


@pytest.mark.parametrize("python", PYTHONS)
async def test_the_bundle_runs_as_a_host_launches_it_on_each_python(bundle: Path, tmp_path: Path, python: str) -> None:
    found = interpreter(python)
    if found is None:
        pytest.skip(f"no Python {python} on this machine (test_two_pythons_at_least fails when fewer than two)")
    directory = tmp_path / "extension"
    manifest = unpacked(bundle, directory)
    config = manifest["server"]["mcp_config"]
    api, base_url = await simulated_api()
    user_config = {"api_key": "sk_test_bundle_0123456789", "base_url": base_url, "allow_writes": "true"}
    params = StdioServerParameters(
        command=config["command"],
        args=[substituted(arg, directory, user_config) for arg in config["args"]],
        env=a_machine_with_only(found, tmp_path / "bin")
        | {name: substituted(value, directory, user_config) for name, value in config["env"].items()},
    )
    try:
        with anyio.fail_after(240):  # the first launch installs the locked wheels (from uv's cache here)
            async with Client(params) as client:
                tools = {tool.name for tool in (await client.list_tools()).tools}
                prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
                runs = data_of(await client.call_tool("list_experiment_runs", {"limit": 2}))
    finally:
        api.terminate()
        await api.wait()
    venv = (directory / ".venv" / "pyvenv.cfg").read_text()
    assert re.search(rf"^version_info = {re.escape(python)}\.", venv, re.M), venv  # it ran on that Python
    assert tools == {tool["name"] for tool in manifest["tools"]}  # allow_writes substituted: writes offered too
    assert prompts == {prompt["name"] for prompt in manifest["prompts"]}
    assert runs["runs"], runs  # a real call reached the API the user configured


def test_two_pythons_at_least() -> None:
    found = [python for python in PYTHONS if interpreter(python)]
    assert len(found) >= 2, f"the bundle is proven on two Pythons or more; this machine has {found}"


@pytest.mark.parametrize("platform", [target for targets in PLATFORMS.values() for target in targets])
def test_the_lock_has_wheels_for_each_platform_and_python_claimed(bundle: Path, tmp_path: Path, platform: str) -> None:
    """Nothing to build on the user's machine: every locked dependency has a wheel for the platform and Python."""
    unpacked(bundle, tmp_path / "extension")
    exported = subprocess.run(
        ["uv", "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes", "--quiet"],
        cwd=tmp_path / "extension",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (tmp_path / "requirements.txt").write_text(exported)
    wheels_only = ["uv", "pip", "install", "--dry-run", "--only-binary", ":all:", "--python-platform", platform]
    into = ["--target", str(tmp_path / "target"), "-r", str(tmp_path / "requirements.txt")]
    for python in PYTHONS:
        resolved = subprocess.run(
            [*wheels_only, "--python-version", python, *into],
            capture_output=True,
            text=True,
        )
        assert resolved.returncode == 0, f"{platform}, Python {python}: {resolved.stderr}"
