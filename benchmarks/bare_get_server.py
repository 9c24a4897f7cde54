"""The SDK's floor for per-call overhead: a bare MCPServer with one tool that makes the same GET as
`get_experiment_run` (one keep-alive httpx2 client) and returns the body as text, logging only warnings.
benchmarks/overhead.py measures it beside retab-mcp, for reference (no goal)."""

import logging
import os

import httpx2
from mcp.server.mcpserver import MCPServer

server = MCPServer("bare-get", log_level="WARNING")
clients: list[httpx2.AsyncClient] = []


@server.tool()
async def get_experiment_run(run_id: str) -> str:
    """Get an experiment run."""
    if not clients:
        headers = {"Authorization": f"Bearer {os.environ['RETAB_API_KEY']}"}
        clients.append(httpx2.AsyncClient(base_url=os.environ["RETAB_API_BASE_URL"], headers=headers))
    response = await clients[0].get(f"/v1/workflows/experiments/runs/{run_id}")
    return response.text


if __name__ == "__main__":
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    server.run("stdio")
