"""The one way the HTTP layer answers by itself (a refusal, a probe): a JSON body with its length."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


async def send_json(
    send: Any, status: int, payload: dict[str, str], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps(payload).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})
