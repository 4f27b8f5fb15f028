"""Every boto3 client of the console is built here, and only here.

Clients are cached per (service, region) and thread-safe to share. The endpoint comes from
``AWS_ENDPOINT_URL`` (the sandbox's moto server), or ``AWS_ENDPOINT_URL_<SERVICE>`` for one
service; retries use botocore's standard mode, as
the second line of defence behind our own rate budget.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from django.conf import settings

from opsconsole.aws.errors import translate

T = TypeVar("T")


def _config(*, fast: bool, read_timeout_s: float | None = None) -> Config:
    if read_timeout_s is not None:
        # A call that must answer within a deadline (a health check's invoke): one
        # attempt, since a retry would run the request twice and wait twice as long.
        return Config(
            retries={"mode": "standard", "max_attempts": 1},
            connect_timeout=5,
            read_timeout=read_timeout_s,
        )
    if fast:
        # Health probes: answer quickly, do not retry.
        return Config(
            retries={"mode": "standard", "max_attempts": 1}, connect_timeout=2, read_timeout=3
        )
    return Config(
        retries={"mode": "standard", "max_attempts": settings.AWS_MAX_ATTEMPTS},
        connect_timeout=5,
        read_timeout=60,
    )


@functools.cache
def _loader() -> botocore.loaders.Loader:
    """botocore's service models, read once per process: a new session (after
    reset_clients) would parse the same JSON files again, about half a second each time."""
    return botocore.loaders.create_loader()


def _botocore_session() -> botocore.session.Session:
    session = botocore.session.get_session()
    session.register_component("data_loader", _loader())
    return session


@functools.cache
def _session() -> boto3.session.Session:
    if settings.SANDBOX and not settings.AWS_ENDPOINT_URL.startswith("https://"):
        # The local moto server accepts any key; fixed ones keep a developer's real
        # credentials (if the machine has any) away from the sandbox.
        return boto3.session.Session(
            aws_access_key_id="sandbox",
            aws_secret_access_key="sandbox",  # noqa: S106
            botocore_session=_botocore_session(),
        )
    return boto3.session.Session(botocore_session=_botocore_session())


@functools.cache
def _client(
    service: str, region: str, endpoint: str, fast: bool, read_timeout_s: float | None = None
) -> Any:
    return _session().client(
        service,
        region_name=region,
        endpoint_url=endpoint or None,
        config=_config(fast=fast, read_timeout_s=read_timeout_s),
    )


def client(
    service: str,
    region: str | None = None,
    *,
    fast: bool = False,
    read_timeout_s: float | None = None,
) -> Any:
    """A cached boto3 client for ``service`` in ``region`` (default: the console's).

    ``read_timeout_s``: a client that waits at most that long for an answer, without
    retries (one client per distinct value)."""
    endpoint = settings.AWS_SERVICE_ENDPOINTS.get(service, settings.AWS_ENDPOINT_URL)
    return _client(service, region or settings.AWS_REGION, endpoint, fast, read_timeout_s)


def reset_clients() -> None:
    """Forget cached clients (tests that switch endpoints or moto contexts)."""
    _client.cache_clear()
    _session.cache_clear()


@contextmanager
def aws_errors() -> Iterator[None]:
    """Re-raise botocore exceptions as AwsError."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - translate() re-raises what it does not know
        raise translate(exc) from exc


def call(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Call a boto3 client method and translate its errors."""
    with aws_errors():
        return fn(**kwargs)


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def tag_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}
