"""The HTTP call the Slack, webhook and PagerDuty channels share: its answer classified."""

from __future__ import annotations

from typing import Any

from migratrack.alerts.model import Answer


def post(url: str, *, json_body: Any = None, content: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 10.0) -> Answer:
    """POST and say what came of it: 2xx delivered; 408, 429 and 5xx, or no answer, worth a
    retry; any other answer refused for good (a bad URL or key will not get better)."""
    import httpx  # the [client] extra; imported here so the store-only SDK does not need it

    try:
        r = httpx.post(url, json=json_body, content=content, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return Answer(ok=False, retry=True, detail=f"no answer: {type(exc).__name__}: {exc}"[:300])
    body = r.text.strip().replace("\n", " ")[:200]
    detail = f"HTTP {r.status_code} {body}".strip()
    if r.is_success:
        return Answer(ok=True, retry=False, detail=detail)
    return Answer(ok=False, retry=r.status_code in (408, 425, 429) or r.status_code >= 500, detail=detail)
