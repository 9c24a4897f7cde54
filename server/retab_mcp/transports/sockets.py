"""Listening sockets for the HTTP servers this package runs (the MCP server, the simulated API).

Made by hand, rather than by uvicorn, so that a caller knows the port before anything is logged (port
0 lets the system choose it, and nothing can take it in between) and connections queue from then on.

The protocol is set to TCP explicitly. asyncio turns on TCP_NODELAY only for sockets whose `proto` is
IPPROTO_TCP, and an accepted socket inherits its listener's: a listener made with `socket.socket()` has
proto 0, so its connections kept Nagle's algorithm, and every answer written in two parts (headers, then
body) waited about 40 ms for the peer's delayed ACK. That stall made a loopback GET take 43 ms.
"""

from __future__ import annotations

import socket

BACKLOG = 512


def listening_socket(host: str, port: int, backlog: int = BACKLOG) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock
