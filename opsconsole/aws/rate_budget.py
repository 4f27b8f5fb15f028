"""A rate budget shared by every worker: a token bucket in Redis, one per account+region.

Lambda's control plane admits 15 requests/s per account and region, all callers combined,
and the limit cannot be raised. Rollouts run on many workers at once, so each worker asks
this budget before a control-plane call; botocore's retries stay as the second line only.

The bucket refills at ``rate`` tokens/s up to ``burst`` tokens. Over any window of T
seconds at most ``burst + rate * T`` calls go out: with the defaults (10/s, burst 5) that
is at most 15 in any one second, the AWS limit, while the sustained rate leaves a third of
the limit to everything else (the console's own pages, people at the CLI).

Taking a token is one Lua script, so check-and-take is atomic across workers; a worker that
must wait books its token in the same call and sleeps until it is due (no polling, which
made every waiting worker ask again at each refill). The script
gets "now" from the caller's clock (injectable for tests) rather than Redis TIME, so a
test can drive it with a fake clock; worker clocks are NTP-synced, and a skew of a few
milliseconds only moves a token's time by that much.

The account is the one the call goes to (``opsconsole.aws.clients.aws_account``), read at
each take: a budget object made once per region (``deployments.pipeline.budget_for``
caches one) books each tenant's calls in the bucket of that tenant's account. The
console's own account keeps the key it always had.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from django.conf import settings

from opsconsole.aws.clients import budget_account

# KEYS[1] the bucket; ARGV: rate (tokens/s), burst, now (s), tokens wanted, longest wait.
# A caller that would have to wait books its token(s) now instead of asking again later:
# the count may go below zero, and the answer is how long to sleep before using them. One
# Redis call per token however many workers wait (polling made them all wake and ask again
# at every refill). Past the longest wait nothing is booked and the answer is negative.
_RESERVE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local max_wait = tonumber(ARGV[5])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
local wait = 0
if tokens + 0.001 < want then
  wait = (want - tokens) / rate
end
local ttl = math.ceil((burst - tokens + want) / rate) + 60
if wait > max_wait then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
  redis.call('EXPIRE', KEYS[1], ttl)
  return tostring(-wait)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - want), 'ts', tostring(ts))
redis.call('EXPIRE', KEYS[1], ttl)
return tostring(wait)
"""


class BudgetTimeout(Exception):  # noqa: N818 - a planned condition, not a bug
    """No token within the caller's deadline: the caller should come back later."""


class BudgetUnavailable(Exception):  # noqa: N818 - a condition that passes
    """The budget's Redis does not answer (restarting, a network blip). No token was
    taken, so no call may go out; trying again later can help."""

    permanent = False


@functools.cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def redis_client() -> redis.Redis:
    return _redis(settings.RATE_BUDGET_REDIS_URL)


@dataclass
class RateBudget:
    # The bucket; "{account}" in it is replaced by the current account at each take.
    key: str
    rate: float
    burst: float
    conn: redis.Redis
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    # How late after its due time a token may still be used (see ``take``).
    max_late_s: float = 0.05
    waited_s: float = field(default=0.0)
    late: int = field(default=0)  # tokens let go because their worker woke too late
    _reserve: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._reserve = self.conn.register_script(_RESERVE)

    @property
    def bucket(self) -> str:
        """The Redis key of the bucket calls made now take their tokens from."""
        if "{account}" not in self.key:
            return self.key
        return self.key.replace("{account}", budget_account())

    def _book(self, tokens: int, max_wait: float) -> float:
        try:
            return float(
                self._reserve(  # type: ignore[operator]
                    keys=[self.bucket],
                    args=[self.rate, self.burst, repr(self.clock()), tokens, max_wait],
                )
            )
        except redis.RedisError as exc:
            raise BudgetUnavailable(f"the rate budget's Redis does not answer: {exc}") from exc

    def try_take(self, tokens: int = 1) -> float:
        """Take ``tokens`` now if the bucket has them (returns 0), else the wait in s."""
        return abs(self._book(tokens, 0.0))

    def take(self, tokens: int = 1, *, timeout_s: float = 60.0) -> float:
        """Book ``tokens`` and sleep until they are due; returns the seconds waited.

        A token is good only close to its time: a worker that wakes more than
        ``max_late_s`` after it (a busy machine, a pause) would send its call together
        with the calls booked after it, more than the limit in one second, so it lets the
        token go and books again. Raises BudgetTimeout (booking nothing) when the tokens
        would be due after ``timeout_s``.
        """
        deadline = self.clock() + timeout_s
        waited = 0.0
        while True:
            booked_at = self.clock()
            wait = self._book(tokens, max(0.0, deadline - booked_at))
            if wait < 0:
                raise BudgetTimeout(f"no {self.bucket} budget within {timeout_s:.0f} s")
            if wait > 0:
                self.sleep(wait)
            late = self.clock() - (booked_at + wait)
            waited += wait + max(0.0, late)
            if late <= self.max_late_s:
                self.waited_s += waited
                return waited
            self.late += 1


def lambda_budget(
    *,
    region: str,
    account: str = "",
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> RateBudget:
    """The budget of Lambda's control plane (15 requests/s per account and region).

    ``account`` fixes the account's name in the key; without it each take uses the
    account its caller works in (``aws_account``), the console's own by default."""
    return RateBudget(
        key=f"{settings.RATE_BUDGET_PREFIX}:lambda-control:{account or '{account}'}:{region}",
        rate=settings.LAMBDA_CONTROL_RATE,
        burst=settings.LAMBDA_CONTROL_BURST,
        conn=redis_client(),
        clock=clock or time.time,
        sleep=sleep or time.sleep,
        max_late_s=settings.LAMBDA_BUDGET_MAX_LATE_S,
    )
