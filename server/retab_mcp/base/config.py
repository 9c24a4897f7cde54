"""Settings: one object, read once, with a stated precedence.

Precedence for every field: an explicit argument (a CLI flag) wins over the environment, which wins over
the default. Hosts launch stdio servers with almost no environment, so the place to set variables is the
`env` block of the host's MCP config.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "https://api.retab.com"

MISSING_KEY_MESSAGE = (
    "RETAB_API_KEY is not set. Put your Retab API key (from the Retab dashboard) in the `env` block of this "
    'server\'s entry in your MCP host config, e.g. "env": {"RETAB_API_KEY": "sk_live_..."}, and restart the '
    "server; for the command line, set it in the environment. To try it without a key, use --demo."
)


# Said without quoting an example: the example may be the very key set, and then it would show redacted.
PLACEHOLDER_KEY_MESSAGE = (
    "RETAB_API_KEY holds a placeholder copied from an example, not a key. Put your Retab API key (it starts "
    "with sk_live_ or sk_test_; the Retab dashboard has it) in the `env` block of this server's entry in your MCP "
    "host config and restart the server; for the command line, set it in the environment."
)
# What a key copied from an example looks like: a word asking to replace it, an ellipsis, angle brackets.
_PLACEHOLDER = re.compile(
    r"replace|your[_-]?(api[_-]?)?key|change[_-]?me|example|\.\.\.|[<>]|\*{3}|^sk_(live|test)_x{4,}$", re.I
)  # words of 6+ letters and runs of symbols: a real key (random characters) matches none by chance


def placeholder_key(key: str | None) -> bool:
    """Whether `key` is an example left in a config (`sk_live_REPLACE_ME`, `sk_live_...`, `<your key>`)."""
    return bool(key) and bool(_PLACEHOLDER.search(key or ""))


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable and the fix."""


def normalise_base_url(url: str) -> str:
    """Accept the base URL with or without a trailing slash or `/v1`, as Retab's own SDK does."""
    url = url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    if not url.startswith(("http://", "https://")):
        raise SettingsError(f"RETAB_API_BASE_URL must start with http:// or https:// (got {url!r}).")
    return url


KEY_HEADER = "X-Retab-Api-Key"  # with per-user keys, where each HTTP request carries its caller's Retab key


@dataclass(frozen=True)
class Settings:
    """Everything the server and client can be tuned with.

    Timeouts are in seconds. A request never waits without bound: connecting is bounded by
    `connect_timeout_s`, each read by `read_timeout_s`, and retries by `retry_budget_s` in total; a tool
    call as a whole by `call_deadline_s` (a wait by its own timeout, at most `max_wait_s`), since hosts
    end calls at about 60 s.
    """

    api_key: str | None = field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 20.0
    max_retries: int = 3
    retry_budget_s: float = 30.0
    max_wait_s: float = 50.0
    call_deadline_s: float = 45.0  # every other tool call, resource read and completion ends by then
    allow_writes: bool = False  # offer the tools that change something: start a run, cancel one
    auth_token: str | None = field(default=None, repr=False)  # required of HTTP/SSE callers when set
    allowed_hosts: tuple[str, ...] = ()  # Host headers accepted besides loopback ones, e.g. "mcp.example.com"
    allowed_origins: tuple[str, ...] = ()  # browser Origins accepted besides loopback ones
    # HTTP and SSE: how many sessions (SSE: streams) may be open, and for how long (transports/sessions.py)
    max_sessions: int = 500
    max_sessions_per_client: int = 100  # a client is a peer address; behind a proxy, all clients are one
    unused_session_idle_s: float = 60.0  # a session that only made the handshake
    session_idle_s: float = 1800.0
    # HTTP and SSE connections (transports/connections.py): a request must be read whole within this time, and at
    # most this many connections are open at once (default: the process's file limit less a reserve)
    request_read_timeout_s: float = 10.0
    max_connections: int | None = None
    # HTTP and SSE: each caller sends its own Retab key (KEY_HEADER) and the server has none of its own; what
    # the server keeps per caller (tools/callers.py) is keyed by a keyed hash of that key
    per_user_keys: bool = False
    max_callers: int = 1000  # callers' partitions kept at once; one more closes the least recently used
    caller_idle_s: float = 900.0  # a partition with no call for this long is closed
    call_log: bool = False  # one JSON line per tool call on stderr (tool, outcome, duration, Retab request id)
    # HTTP and SSE: OAuth 2.1 resource server (transports/oauth.py): tokens from this issuer, for this resource
    oauth_issuer: str | None = None
    oauth_resource: str | None = None  # this server's canonical URL, e.g. https://mcp.example.com/mcp
    oauth_read_scope: str = "retab:read"
    oauth_write_scope: str = "retab:write"
    # Replicas (watch/sharing.py): one poller per run through Redis; partitions named by HMAC under this secret
    redis_url: str | None = field(default=None, repr=False)  # it may hold a password
    partition_secret: str | None = field(default=None, repr=False)  # the same on every replica
    replica_id: str | None = None  # default: host name and process id
    # Waits run as MCP tasks for hosts that ask (tasks/): how long a task and its result live when the host asks
    # for no time (or more than the maximum), and how many tasks wait at once, per caller and in all
    task_ttl_s: float = 3600.0
    task_max_ttl_s: float = 86400.0
    max_tasks_per_caller: int = 50
    max_tasks: int = 1000

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", normalise_base_url(self.base_url))
        for name in (
            "connect_timeout_s",
            "read_timeout_s",
            "retry_budget_s",
            "max_wait_s",
            "call_deadline_s",
            "unused_session_idle_s",
            "session_idle_s",
            "request_read_timeout_s",
            "caller_idle_s",
            "task_ttl_s",
            "task_max_ttl_s",
        ):
            if not 0 < getattr(self, name) < math.inf:
                raise SettingsError(f"{name} must be a positive, finite number of seconds.")
        if self.max_retries < 0:
            raise SettingsError("max_retries must be 0 or more.")
        if self.per_user_keys and self.api_key:
            raise SettingsError(
                "RETAB_API_KEY is set, but with per-user keys (RETAB_MCP_PER_USER_KEYS=1) every caller sends its own "
                f"key in the {KEY_HEADER} header and the server uses none of its own: unset RETAB_API_KEY."
            )
        if bool(self.oauth_issuer) != bool(self.oauth_resource):
            raise SettingsError(
                "OAuth needs both RETAB_MCP_OAUTH_ISSUER (the authorization server) and RETAB_MCP_OAUTH_RESOURCE "
                "(this server's canonical URL, the audience of its tokens)."
            )
        if self.oauth_issuer and self.auth_token:
            raise SettingsError(
                "Both RETAB_MCP_AUTH_TOKEN and RETAB_MCP_OAUTH_ISSUER are set: choose one way to authenticate callers."
            )
        if self.redis_url and not (self.partition_secret and len(self.partition_secret) >= 16):
            raise SettingsError(
                "RETAB_MCP_REDIS_URL is set: replicas share polls per Retab key under a keyed hash, so they need the "
                'same RETAB_MCP_PARTITION_SECRET, 16 characters or more (e.g. `python -c "import secrets; '
                'print(secrets.token_urlsafe(32))"`).'
            )
        if self.task_ttl_s > self.task_max_ttl_s:
            raise SettingsError(
                "RETAB_MCP_TASK_TTL_S (a task's lifetime when the host asks for none) must not exceed "
                "RETAB_MCP_TASK_MAX_TTL_S (the longest a task may live)."
            )
        counts = ("max_sessions", "max_sessions_per_client", "max_connections", "max_callers")
        for name in (*counts, "max_tasks_per_caller", "max_tasks"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SettingsError(f"{name} must be 1 or more.")

    def __repr__(self) -> str:
        # The key never appears in a repr, a log line or a traceback's locals.
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
        return (
            f"Settings(api_key={'set' if self.api_key else 'missing'}, "
            f"auth_token={'set' if self.auth_token else 'missing'}, {shown})"
        )

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from `overrides` (flags), then `env` (default: os.environ), then defaults.

        `None` in `overrides` means "not given", so a CLI can pass every flag through unchanged.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, (variable, kind) in _ENVIRONMENT.items():
            raw = env.get(variable, "").strip()
            if raw:
                try:
                    values[name] = kind(raw)
                except ValueError:
                    expected = "1 or 0" if kind is boolean else f"a valid {kind.__name__}"
                    raise SettingsError(f"{variable}={raw!r}: expected {expected}.") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def secrets(self) -> list[str]:
        """What no output may show: the key, the token, the partition secret and a Redis password."""
        found = [self.api_key, self.auth_token, self.partition_secret]
        if self.redis_url:
            password = urlsplit(self.redis_url).password
            found.append(password)
        return [s for s in found if s]

    def with_overrides(self, **overrides: Any) -> Settings:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def boolean(raw: str) -> bool:
    """Read a yes/no environment value: 1/true/yes/on or 0/false/no/off, in any case."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def comma_list(raw: str) -> tuple[str, ...]:
    """Read a comma-separated environment value; blanks are dropped."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


_ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "api_key": ("RETAB_API_KEY", str),
    "base_url": ("RETAB_API_BASE_URL", str),
    "connect_timeout_s": ("RETAB_CONNECT_TIMEOUT_S", float),
    "read_timeout_s": ("RETAB_READ_TIMEOUT_S", float),
    "max_retries": ("RETAB_MAX_RETRIES", int),
    "retry_budget_s": ("RETAB_RETRY_BUDGET_S", float),
    "max_wait_s": ("RETAB_MCP_MAX_WAIT_S", float),
    "call_deadline_s": ("RETAB_MCP_CALL_DEADLINE_S", float),
    "allow_writes": ("RETAB_MCP_ALLOW_WRITES", boolean),
    "auth_token": ("RETAB_MCP_AUTH_TOKEN", str),
    "allowed_hosts": ("RETAB_MCP_ALLOWED_HOSTS", comma_list),
    "allowed_origins": ("RETAB_MCP_ALLOWED_ORIGINS", comma_list),
    "max_sessions": ("RETAB_MCP_MAX_SESSIONS", int),
    "max_sessions_per_client": ("RETAB_MCP_MAX_SESSIONS_PER_CLIENT", int),
    "unused_session_idle_s": ("RETAB_MCP_UNUSED_SESSION_IDLE_S", float),
    "session_idle_s": ("RETAB_MCP_SESSION_IDLE_S", float),
    "request_read_timeout_s": ("RETAB_MCP_REQUEST_READ_TIMEOUT_S", float),
    "max_connections": ("RETAB_MCP_MAX_CONNECTIONS", int),
    "per_user_keys": ("RETAB_MCP_PER_USER_KEYS", boolean),
    "max_callers": ("RETAB_MCP_MAX_CALLERS", int),
    "caller_idle_s": ("RETAB_MCP_CALLER_IDLE_S", float),
    "call_log": ("RETAB_MCP_CALL_LOG", boolean),
    "oauth_issuer": ("RETAB_MCP_OAUTH_ISSUER", str),
    "oauth_resource": ("RETAB_MCP_OAUTH_RESOURCE", str),
    "oauth_read_scope": ("RETAB_MCP_OAUTH_READ_SCOPE", str),
    "oauth_write_scope": ("RETAB_MCP_OAUTH_WRITE_SCOPE", str),
    "redis_url": ("RETAB_MCP_REDIS_URL", str),
    "partition_secret": ("RETAB_MCP_PARTITION_SECRET", str),
    "replica_id": ("RETAB_MCP_REPLICA_ID", str),
    "task_ttl_s": ("RETAB_MCP_TASK_TTL_S", float),
    "task_max_ttl_s": ("RETAB_MCP_TASK_MAX_TTL_S", float),
    "max_tasks_per_caller": ("RETAB_MCP_MAX_TASKS_PER_CALLER", int),
    "max_tasks": ("RETAB_MCP_MAX_TASKS", int),
}
