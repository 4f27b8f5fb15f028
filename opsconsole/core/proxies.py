"""The client's address as seen through the proxies in front of the console.

Behind a load balancer REMOTE_ADDR is the load balancer. Each proxy appends the address it
received the request from to X-Forwarded-For, so the client is the hop TRUSTED_PROXY_COUNT
from the right; everything left of it was written by the client and can say anything.
The header is read only when the request comes from one of TRUSTED_PROXIES: anyone else
could send a forged one. The audit log and the login lockout (django-axes) both ask here.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def is_trusted_proxy(address: str) -> bool:
    parsed = _address(address)
    if parsed is None:
        return False
    return any(parsed in net for net in _networks(tuple(settings.TRUSTED_PROXIES)))


def client_address(request: HttpRequest) -> str | None:
    """The client's IP address: REMOTE_ADDR unless a trusted proxy forwarded the request."""
    peer = request.META.get("REMOTE_ADDR") or None
    if not getattr(settings, "USE_X_FORWARDED_FOR", False) or not peer:
        return peer
    if not is_trusted_proxy(peer):
        return peer
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    hops = [h for h in hops if h]
    count = settings.TRUSTED_PROXY_COUNT
    if len(hops) < count:
        # Fewer hops than proxies: the request skipped one, so no hop can be trusted.
        return peer
    client = _address(hops[-count])
    return str(client) if client is not None else peer
