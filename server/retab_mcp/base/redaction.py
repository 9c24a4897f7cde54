"""The one redaction every path to a person or a model goes through: tool results and errors, resource
reads, completions, log records and the command line's output.

It works on what is shown, after decoding: an API may quote the key JSON-escaped (`sk\\u005ftest_...`,
`\\/`), which parsing turns back into the key itself, so redacting the bytes received is not enough. What
it removes, for each secret (the Retab key, the HTTP token):
- the secret as it is, and URL-encoded;
- any run of `FRAGMENT` or more of its characters, so that a secret split across two fields, or cut
  short by a length limit, does not come back whole when the two are shown side by side;
- the same inside text that still carries JSON escapes (an excerpt of a raw body), once decoded.

How: every window of `FRAGMENT` characters of every form of every secret goes into one set (a secret
shorter than that is one window of its own length). A text is cut into runs of the characters secrets are
made of (a regular expression, so in C), and each window of each run long enough is looked up in the set.
So the cost of redacting a text grows with the text, not with the number of secrets: a server with
per-user keys knows a thousand of them, and adds and forgets one (`add`, `forget`) without rebuilding
anything. (A general multi-pattern automaton, Aho-Corasick, would be rebuilt at each key added or
forgotten; windows of one fixed length need only a set.)
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any, cast
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"
FRAGMENT = 12  # the shortest run of a secret's characters that is taken for the secret
_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\(/)")


def _forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote_plus(secret, safe="")}


def _windows(form: str) -> list[str]:
    length = min(FRAGMENT, len(form))
    return [form[i : i + length] for i in range(len(form) - length + 1)]


class Redactor:
    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._windows: Counter[str] = Counter()  # every window of every form, counted by the secrets holding it
        self._lengths: Counter[int] = Counter()
        self._characters: Counter[str] = Counter()
        self._runs: re.Pattern[str] | None = None  # runs of the secrets' characters; made again when they change
        for secret in secrets:
            if secret:
                self.add(secret)

    def add(self, secret: str) -> None:
        """Redact `secret` from now on (adding one twice needs forgetting it twice)."""
        for form in _forms(secret):
            windows = _windows(form)
            self._windows.update(windows)
            self._lengths[min(FRAGMENT, len(form))] += len(windows)
            new = set(form) - set(self._characters)
            self._characters.update(form)
            if new:
                self._runs = None

    def forget(self, secret: str) -> None:
        """Stop redacting `secret` (it is no longer in use: its caller's partition closed)."""
        for form in _forms(secret):
            windows = _windows(form)
            self._windows.subtract(windows)
            self._lengths[min(FRAGMENT, len(form))] -= len(windows)
            self._characters.subtract(form)
        for counter in (self._windows, self._lengths, self._characters):
            for item in [k for k, n in counter.items() if n <= 0]:  # pyright: ignore[reportUnknownVariableType]
                del counter[item]  # pyright: ignore[reportUnknownArgumentType]
        self._runs = None

    def __bool__(self) -> bool:
        return bool(self._windows)

    def text(self, value: str) -> str:
        if not self._windows:
            return value
        decoded = _JSON_ESCAPE.sub(_unescape, value) if "\\" in value else value
        if decoded != value and self._spans(decoded):
            value = decoded  # the escapes hid a secret: show the decoded text, redacted
        pieces: list[str] = []
        at = 0
        for start, end in self._spans(value):
            pieces += [value[at:start], REDACTED]
            at = end
        return "".join([*pieces, value[at:]])

    def _spans(self, value: str) -> list[tuple[int, int]]:
        """The stretches of `value` covered by windows of a secret, overlapping ones merged."""
        if self._runs is None:
            shortest = min(self._lengths)
            characters = "".join(sorted(self._characters))
            self._runs = re.compile(f"[{re.escape(characters)}]{{{shortest},}}")
        lengths = sorted(self._lengths)
        found: list[tuple[int, int]] = []
        for run in self._runs.finditer(value):
            text, offset = run.group(), run.start()
            for length in lengths:
                found.extend(
                    (offset + i, offset + i + length)
                    for i in range(len(text) - length + 1)
                    if text[i : i + length] in self._windows
                )
        found.sort()
        spans: list[tuple[int, int]] = []
        for start, end in found:
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], end))
            else:
                spans.append((start, end))
        return spans

    def deep(self, value: Any) -> Any:
        """`value` with every string in it (dict keys and values, list items) redacted."""
        if not self._windows:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            items = cast(dict[Any, Any], value).items()
            return {self.deep(k): self.deep(v) for k, v in items}
        if isinstance(value, list | tuple):
            return [self.deep(item) for item in cast(list[Any], value)]
        return value


def _unescape(match: re.Match[str]) -> str:
    return chr(int(match[1], 16)) if match[1] else "/"
