"""With per-user keys, an HTTP request that carries no caller's Retab key is answered 401 here.

The key travels in `KEY_HEADER`; the server has none of its own to fall back on, so a request without
one could do nothing but fail later, less clearly. What is checked is only that a key is there and could
be one (printable, without spaces, at least 16 characters and not absurdly long, not an example's
placeholder), before any partition is made for it; Retab itself says whether it is valid.
"""

from __future__ import annotations

from typing import Any

from ..base.config import KEY_HEADER, placeholder_key
from .answers import send_json

KEY_MIN = 16  # Retab's keys are sk_live_ or sk_test_ and a long random part
KEY_MAX = 512
_HEADER = KEY_HEADER.lower().encode()


class CallerKeyGate:
    """ASGI middleware: HTTP requests without a usable caller key get 401; lifespan passes through."""

    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            problem = self._problem(scope)
            if problem is not None:
                await send_json(send, 401, {"error": "missing_retab_key", "message": problem})
                return
        await self._app(scope, receive, send)

    @staticmethod
    def _problem(scope: dict[str, Any]) -> str | None:
        values = [value for name, value in scope.get("headers", []) if name == _HEADER]
        if not values:
            return f"This server uses each caller's own Retab key: send it in the {KEY_HEADER} header."
        if len(values) > 1:
            return f"Send one {KEY_HEADER} header, not {len(values)}."
        raw = values[0].strip()
        shown = f"printable ASCII without spaces, {KEY_MIN} to {KEY_MAX} characters, e.g. sk_live_..."
        if not raw.isascii() or not raw.decode().isprintable() or b" " in raw:
            return f"The {KEY_HEADER} header does not hold a Retab API key ({shown})."
        if not KEY_MIN <= len(raw) <= KEY_MAX:
            # A key of a few characters is no secret, and would match (so mangle) every other caller's text.
            return f"The {KEY_HEADER} header does not hold a Retab API key ({shown})."
        if placeholder_key(raw.decode()):
            return f"The {KEY_HEADER} header holds a placeholder, not a key: put your Retab API key there."
        return None
