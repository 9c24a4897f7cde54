"""The one redaction every path to a person or a model goes through: tool results and errors, resource
reads, completions, log records and the command line's output.

It works on what is shown, after decoding: an API may quote the key JSON-escaped (`sk\\u005ftest_...`,
`\\/`), which parsing turns back into the key itself, so redacting the bytes received is not enough. What
it removes, for each secret (the Retab key, the HTTP token):
- the secret as it is, and URL-encoded;
- any run of `FRAGMENT` or more of its characters, so that a secret split across two fields, or cut
  short by a length limit, does not come back whole when the two are shown side by side;
- the same inside text that still carries JSON escapes (an excerpt of a raw body), once decoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, cast
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"
FRAGMENT = 12  # the shortest run of a secret's characters that is taken for the secret
_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\(/)")


class Redactor:
    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        variants: set[str] = set()
        for secret in (s for s in secrets if s):
            forms = {secret, quote(secret, safe=""), quote_plus(secret, safe="")}
            for form in forms:
                variants.add(form)
                length = min(FRAGMENT, len(form))
                variants.update(form[i : i + length] for i in range(len(form) - length + 1))
        # A lookahead finds every match, overlapping ones too, so that a run of the secret longer than one
        # fragment is covered whole; longest first, so that each match is as long as it can be.
        ordered = "|".join(map(re.escape, sorted(variants, key=len, reverse=True)))
        self._pattern = re.compile(f"(?=({ordered}))") if variants else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, value: str) -> str:
        if self._pattern is None:
            return value
        decoded = _JSON_ESCAPE.sub(_unescape, value) if "\\" in value else value
        if decoded != value and self._pattern.search(decoded):
            value = decoded  # the escapes hid a secret: show the decoded text, redacted
        spans: list[list[int]] = []  # the stretches covered by matches, overlapping ones merged
        for match in self._pattern.finditer(value):
            start, end = match.start(1), match.end(1)
            if spans and start <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        pieces: list[str] = []
        at = 0
        for start, end in spans:
            pieces += [value[at:start], REDACTED]
            at = end
        return "".join([*pieces, value[at:]])

    def deep(self, value: Any) -> Any:
        """`value` with every string in it (dict keys and values, list items) redacted."""
        if self._pattern is None:
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


NO_SECRETS = Redactor()
