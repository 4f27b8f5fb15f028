"""Every boto3 client of the console is built here, and only here.

Clients are cached per (service, region, AWS account) and thread-safe to share. The
endpoint comes from ``AWS_ENDPOINT_URL`` (the sandbox's moto server), or
``AWS_ENDPOINT_URL_<SERVICE>`` for one service; retries use botocore's standard mode, as
the second line of defence behind our own rate budget.

The AWS account a call goes to is the one entered with ``aws_account(...)`` (a
contextvar: the job runner enters a tenant's account for every step, a health page for its
reads), else the console's own (the credentials it runs with). Another account is reached
through its role: STS AssumeRole with the account's external id, by the console's own
credentials; the temporary credentials are refreshed by botocore before they expire, and
kept per process. Domain code never handles credentials.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import boto3
import botocore.credentials
import botocore.loaders
import botocore.session
from botocore.config import Config
from django.conf import settings

from opsconsole.aws.errors import AwsError, translate

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


# --- the AWS account a call goes to -------------------------------------------------


@dataclass(frozen=True)
class AccountRole:
    """An AWS account other than the console's own, reached through a role in it."""

    name: str
    account_id: str
    role_arn: str
    external_id: str

    @property
    def session_name(self) -> str:
        # CloudTrail in the customer's account shows this for every call the console makes.
        return ("opsconsole-" + re.sub(r"[^\w+=,.@-]", "-", self.name))[:64]


class _Lazy:
    """An account looked up on the first AWS call that needs it (``aws_account_lazy``)."""

    def __init__(self, resolve: Callable[[], Any]):
        self._resolve = resolve
        self._done = False
        self._role: AccountRole | None = None

    def role(self) -> AccountRole | None:
        if not self._done:
            self._role = as_account_role(self._resolve())
            self._done = True
        return self._role


_current: ContextVar[AccountRole | _Lazy | None] = ContextVar(
    "opsconsole_aws_account", default=None
)


def _role_now() -> AccountRole | None:
    value = _current.get()
    return value.role() if isinstance(value, _Lazy) else value


def as_account_role(account: Any) -> AccountRole | None:
    """``account`` as an AccountRole: None (the console's own), an AccountRole, or any
    object with ``name``, ``account_id``, ``role_arn`` and ``external_id`` (a model row)."""
    if account is None or isinstance(account, AccountRole):
        return account
    return AccountRole(
        name=account.name,
        account_id=account.account_id,
        role_arn=account.role_arn,
        external_id=account.external_id,
    )


@contextmanager
def aws_account(account: Any) -> Iterator[AccountRole | None]:
    """Every client built inside (``client()``) works in ``account``; None is the
    console's own. Nests, and is per thread and per task (a contextvar)."""
    token = _current.set(as_account_role(account))
    try:
        yield _role_now()
    finally:
        _current.reset(token)


@contextmanager
def aws_account_lazy(resolve: Callable[[], Any]) -> Iterator[None]:
    """As ``aws_account(resolve())``, with ``resolve`` called only when a client is first
    asked for inside (a job run that makes no AWS call costs no lookup)."""
    token = _current.set(_Lazy(resolve))
    try:
        yield
    finally:
        _current.reset(token)


def current_account() -> AccountRole | None:
    """The account entered with ``aws_account``; None: the console's own."""
    return _role_now()


def budget_account() -> str:
    """The name of the current account in rate budget keys: the console's own keeps the
    configured name (RATE_BUDGET_ACCOUNT, so its budget key never changed), another is
    its account id (AWS counts per account, whatever the console calls it)."""
    role = _role_now()
    return role.account_id if role else settings.RATE_BUDGET_ACCOUNT


# Tests move botocore's clock to see credentials refreshed.
now: Callable[[], datetime] = botocore.credentials._local_now


def assume_role(role: AccountRole) -> dict[str, Any]:
    """Temporary credentials of ``role``'s account, asked for with the console's own.

    A refusal (the trust policy does not name the console, or the external id differs)
    comes back as an AwsError that says which role and what to check."""
    sts = _client("sts", settings.AWS_REGION, _endpoint("sts"), False, None, None)
    try:
        resp = call(
            sts.assume_role,
            RoleArn=role.role_arn,
            RoleSessionName=role.session_name,
            ExternalId=role.external_id,
            DurationSeconds=settings.AWS_ASSUME_ROLE_SECONDS,
        )
    except AwsError as exc:
        raise AwsError(
            f"the console could not assume {role.role_arn} (AWS account {role.name}, "
            f"{role.account_id}): {exc.code or 'error'}: {exc.message}. Check that the "
            "role's trust policy names the console's principal and requires this external "
            "id (sts:ExternalId).",
            code=exc.code,
            operation="AssumeRole",
            permanent=exc.permanent,
        ) from exc
    creds = resp["Credentials"]
    expiry = creds["Expiration"]
    return {
        "access_key": creds["AccessKeyId"],
        "secret_key": creds["SecretAccessKey"],
        "token": creds["SessionToken"],
        "expiry_time": expiry.isoformat() if isinstance(expiry, datetime) else str(expiry),
    }


class _AssumedRoleProvider(botocore.credentials.CredentialProvider):
    """Credentials of one account's role: fetched on first use, refreshed by botocore
    (15 minutes before they expire; a call waits for them only in the last 10)."""

    METHOD = "opsconsole-assume-role"

    def __init__(self, role: AccountRole):
        super().__init__()
        self.role = role

    def load(self) -> botocore.credentials.DeferredRefreshableCredentials:
        return botocore.credentials.DeferredRefreshableCredentials(
            refresh_using=lambda: assume_role(self.role),
            method=self.METHOD,
            time_fetcher=lambda: now(),
        )


_sessions_lock = threading.Lock()
_account_sessions: dict[AccountRole, boto3.session.Session] = {}


def _account_session(role: AccountRole) -> boto3.session.Session:
    """One boto3 session per account and process: its credentials are shared by all its
    clients, so one AssumeRole serves every service and region of the account."""
    with _sessions_lock:
        session = _account_sessions.get(role)
        if session is None:
            core = _botocore_session()
            core.get_component("credential_provider").insert_before(
                "env", _AssumedRoleProvider(role)
            )
            session = boto3.session.Session(botocore_session=core)
            _account_sessions[role] = session
        return session


def _endpoint(service: str) -> str:
    return settings.AWS_SERVICE_ENDPOINTS.get(service, settings.AWS_ENDPOINT_URL)


@functools.cache
def _client(
    service: str,
    region: str,
    endpoint: str,
    fast: bool,
    read_timeout_s: float | None = None,
    account: AccountRole | None = None,
) -> Any:
    session = _account_session(account) if account else _session()
    return session.client(
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
    """A cached boto3 client for ``service`` in ``region`` (default: the console's), in
    the current AWS account (``aws_account``).

    ``read_timeout_s``: a client that waits at most that long for an answer, without
    retries (one client per distinct value)."""
    return _client(
        service,
        region or settings.AWS_REGION,
        _endpoint(service),
        fast,
        read_timeout_s,
        _role_now(),
    )


def reset_clients() -> None:
    """Forget cached clients and assumed credentials (tests that switch endpoints or moto
    contexts)."""
    _client.cache_clear()
    _session.cache_clear()
    with _sessions_lock:
        _account_sessions.clear()


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
