"""The bare baseline for start-up: an MCPServer with one tool and nothing else, as the SDK's docs show."""

from mcp.server.mcpserver import MCPServer

server = MCPServer("hello")


@server.tool()
def hello(name: str) -> str:
    """Say hello."""
    return f"Hello, {name}!"


if __name__ == "__main__":
    server.run("stdio")
