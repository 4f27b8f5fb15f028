"""A stage's default route throttling, as a token bucket per API and stage.

HTTP APIs throttle with a token bucket: ThrottlingBurstLimit tokens at most, refilled at
ThrottlingRateLimit a second; a request finding none is answered 429
``{"message":"Too Many Requests"}`` without reaching the integration. A stage that sets
no rate is not throttled here (the account's 10,000 requests/s would never be reached in
a sandbox); a rate without a burst gets a bucket of one second's worth.
"""

from __future__ import annotations

import threading
import time
from typing import Any

TOO_MANY = (429, b'{"message":"Too Many Requests"}')

_lock = threading.Lock()
# (api id, stage) -> (rate, burst, tokens, last refill)
_buckets: dict[tuple[str, str], tuple[float, float, float, float]] = {}


def admit(api_id: str, stage_name: str, stage: Any) -> bool:
    """Take a token for one request; False when the stage's bucket is empty."""
    settings = getattr(stage, "default_route_settings", None) or {}
    rate = settings.get("throttlingRateLimit")
    if rate is None:
        return True
    rate = float(rate)
    burst = float(settings.get("throttlingBurstLimit") or max(1.0, rate))
    key = (api_id, stage_name)
    now = time.monotonic()
    with _lock:
        known = _buckets.get(key)
        if known is None or known[:2] != (rate, burst):
            tokens = burst  # a new or changed limit starts full
        else:
            tokens = min(burst, known[2] + (now - known[3]) * rate)
        admitted = tokens >= 1.0
        _buckets[key] = (rate, burst, tokens - 1.0 if admitted else tokens, now)
    return admitted
