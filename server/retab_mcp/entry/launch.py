"""Where every start of `retab-mcp` begins (the console script, `python -m retab_mcp`, the bundle's main.py):
the command's modules are imported with the cyclic garbage collector paused, then frozen.

Importing the SDK and this server makes some 130,000 objects that live as long as the process. While they
are made, the collector keeps scanning all of them, and finds almost nothing to free (under 900 objects): an
eighth to a fifth of the imports' CPU time here (BENCHMARKS.md 'Start-up'). So the imports run without it,
and then `gc.freeze()` moves what they made to where no collection ever scans it, which also keeps the
collections of a long-lived server small. Collection resumes for all the server makes afterwards; what the
imports left as garbage stays, a few hundred objects.
"""

from __future__ import annotations

import gc


def main() -> None:
    was_collecting = gc.isenabled()
    gc.disable()
    try:
        from .cli import main as run_command
    finally:
        gc.freeze()
        if was_collecting:
            gc.enable()
    run_command()
