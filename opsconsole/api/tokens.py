"""API tokens: made in the browser or by ``manage.py api_token_create``, shown once,
stored as a SHA-256 hash, acting with a role no higher than their owner's, expiring,
revocable, rate limited.

A token is a bearer credential with 256 bits of randomness, so a plain SHA-256 (not a slow
password hash) is the right store: nobody can guess one from its hash, and lookups by hash
are one indexed query per request.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

import redis
from django.conf import settings
from django.utils import timezone

from deployments.models import ApiToken
from opsconsole.accounts.models import ROLE_RANK, Role

log = logging.getLogger(__name__)

TOKEN_PREFIX = "ocs_"  # noqa: S105 - a marker, not a secret
MAX_LIFETIME_DAYS = 365


class TokenRefused(ValueError):  # noqa: N818 - shown to the person
    pass


def token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def effective_role(token: ApiToken) -> str:
    """The lower of the token's role and its owner's (so demoting the owner demotes every
    token they made)."""
    owner = Role(token.user.role) if token.user.is_active else Role.NONE
    if not token.role:
        return owner
    wanted = Role(token.role)
    return wanted if ROLE_RANK[wanted] <= ROLE_RANK[owner] else owner


def api_token_create(
    *, user, name: str, role: str = "", expires_days: int | None = None
) -> tuple[ApiToken, str]:
    """A new token for ``user``; the raw value is returned once and never stored."""
    name = (name or "").strip()
    if not name:
        raise TokenRefused("name: give the token a name (what uses it: 'ci', 'add-customer').")
    if len(name) > 100:
        raise TokenRefused("name: at most 100 characters.")
    role = role or user.role
    if role not in ROLE_RANK or role == Role.NONE:
        raise TokenRefused(f"role: one of viewer, operator, admin (not {role!r}).")
    if ROLE_RANK[Role(role)] > ROLE_RANK[Role(user.role)]:
        raise TokenRefused(
            f"role: {user.username} is {Role(user.role).label.lower() or 'without a role'}; "
            f"a token cannot have more power than its owner ({role})."
        )
    days = settings.API_TOKEN_DEFAULT_DAYS if expires_days is None else expires_days
    if not 1 <= days <= MAX_LIFETIME_DAYS:
        raise TokenRefused(f"expires_days: 1 to {MAX_LIFETIME_DAYS} days.")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        name=name,
        user=user,
        role=role,
        prefix=raw[:12],
        key_sha256=token_digest(raw),
        expires_at=timezone.now() + timedelta(days=days),
    )
    return token, raw


def api_token_revoke(token: ApiToken) -> bool:
    """Revoke; False when it already was."""
    return bool(
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    )


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the token, its owner and the role it may use."""

    token: ApiToken
    user: object
    role: str

    def has_role(self, role: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]


def token_authenticate(raw: str) -> Principal | None:
    """The principal of a live token, or None (unknown, revoked, expired, inactive owner)."""
    if not raw.startswith(TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_sha256=token_digest(raw), revoked_at__isnull=True)
        .first()
    )
    now = timezone.now()
    if token is None or not token.user.is_active:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    # One write a minute at most: last-used is for people, not an access log.
    if token.last_used_at is None or now - token.last_used_at > timedelta(seconds=60):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return Principal(token=token, user=token.user, role=effective_role(token))


_redis: redis.Redis | None = None


def _client() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(
            settings.BROKER_URL, socket_timeout=0.5, socket_connect_timeout=0.5
        )
    return _redis


def rate_limit_wait(token: ApiToken, *, now: float | None = None) -> int:
    """0 when the request may go on, else the seconds until the token's window reopens.

    A fixed one-minute window per token in Redis (shared by every web process). When Redis
    does not answer the request goes on: the limit protects the console from a runaway
    script, and the console without Redis is already degraded enough.
    """
    limit = settings.API_RATE_PER_MINUTE
    now = time.time() if now is None else now
    window = int(now // 60)
    key = f"api-rate:{token.key_sha256[:24]}:{window}"
    try:
        pipe = _client().pipeline()
        pipe.incr(key)
        pipe.expire(key, 120)
        count = pipe.execute()[0]
    except redis.RedisError as exc:
        log.warning("API rate limit not applied (Redis: %s)", exc)
        return 0
    if count <= limit:
        return 0
    return max(1, int((window + 1) * 60 - now) + 1)
