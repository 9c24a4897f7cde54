"""Whose a task is: a keyed hash of every context the caller is known by.

The parts, each when the server has it:
- the key partition: with per-user keys, the keyed hash of the caller's Retab key (tools/callers.py), so a
  task made with key A is never shown to a caller with key B;
- the authorization subject: with OAuth, the token's (client id, issuer, subject), as the spec asks
  ("when an authorization context is provided, receivers MUST bind tasks to said context");
- the session: a 2025-era session over HTTP (Mcp-Session-Id), so that two hosts sharing a key and a token
  still see only their own tasks.
A caller with none of these (stdio, or stateless HTTP with one shared key) is told apart by the task id
alone: 192 random bits (`new_task_id`), which the README says.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Any

from mcp.server.auth.provider import AccessToken, principal_components
from mcp.server.context import ServerRequestContext

from ..base.config import KEY_HEADER
from ..tools.sdk_compat import connection_of

TASK_ID_BYTES = 24


def new_task_id(replica: str | None) -> str:
    """An unguessable id; behind a proxy that routes by Mcp-Name, prefixed with the replica that holds it."""
    token = secrets.token_urlsafe(TASK_ID_BYTES)
    return f"{replica}.{token}" if replica else token


def owner_of(
    ctx: ServerRequestContext[Any, Any], secret: bytes, partition_of: Callable[[str], str] | None = None
) -> str:
    """The owner a task made in this request is bound to, and that every later request about it must match.
    `partition_of` turns a caller's key into its partition's name (with per-user keys)."""
    request = ctx.request
    headers = getattr(request, "headers", None)
    key = headers.get(KEY_HEADER) if headers is not None else None
    partition = partition_of(key) if key and partition_of is not None else "own"
    user = getattr(request, "scope", {}).get("user") if request is not None else None
    token = getattr(user, "access_token", None)
    subject = "|".join(part or "" for part in principal_components(token)) if isinstance(token, AccessToken) else ""
    session = connection_of(ctx).session_id or ""
    parts = "\n".join((partition, subject, session))
    return hmac.new(secret, parts.encode(), hashlib.sha256).hexdigest()[:32]
