"""The MCP tools, by family, and the server that registers them (server.py).

This package imports nothing itself, so that views can read `names.py` without loading the tools."""
