"""The bare baseline started as retab-mcp starts (server/retab_mcp/entry/launch.py): the SDK imported with the
cyclic garbage collector paused, then frozen. Against it, retab-mcp's start-up shows what its own modules
and set-up cost, with the collector's part taken out of both; it is the floor the benchmark checks its
figures against (benchmarks/startup.py)."""

import gc

gc.disable()  # before any other import, as the launcher pauses it before its first
import runpy  # noqa: E402
from pathlib import Path  # noqa: E402

import mcp.server.mcpserver  # noqa: E402, F401  (imported here, with the collector paused)

gc.freeze()
gc.enable()
runpy.run_path(str(Path(__file__).with_name("hello_server.py")), run_name="__main__")
