"""Serve the simulated Retab API on a port: `python -m retab_mcp.simulator [--port 8710] [--add-runs N]`.

Point the server at it with RETAB_API_BASE_URL=http://127.0.0.1:8710 and any RETAB_API_KEY. It serves the
demo's world (`retab-mcp demo` walks through it: the `invoices-tuned` experiment of the loop, short runs
started by POST, the workflow runs and eval runs), or with --plain the world the tests start from. Runs
added with --add-runs start when the simulator does and last --run-seconds (a range spreads them evenly);
`GET /_simulator/stats` tells how many requests were served, in all and per run, and the added runs' ids.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..transports.sockets import listening_socket
from .app import SimulatedRetab


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m retab_mcp.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8710, help="0: any free port (the ready line names it)")
    parser.add_argument("--add-runs", type=int, default=0, help="runs to add, starting now")
    parser.add_argument("--run-seconds", default="40", help="their duration, e.g. 40 or 20:40 (spread)")
    parser.add_argument("--documents", type=int, default=10, help="documents per added run")
    parser.add_argument("--plain", action="store_true", help="the tests' world instead of the demo's")
    args = parser.parse_args()
    low, _, high = args.run_seconds.partition(":")
    shortest, longest = float(low), float(high or low)
    sim = SimulatedRetab(demo=not args.plain)
    for i in range(args.add_runs):
        spread = i / max(1, args.add_runs - 1)
        sim.add_run(duration_s=shortest + (longest - shortest) * spread, documents=args.documents)
    import uvicorn

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sock = listening_socket(args.host, args.port)  # connections queue from here on: the line below means "ready"
    port = sock.getsockname()[1]  # with --port 0, the one the system chose
    print(f"simulated Retab API on http://{args.host}:{port}", file=sys.stderr, flush=True)
    config = uvicorn.Config(sim, log_level="warning", lifespan="off", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
