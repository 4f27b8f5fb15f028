"""What tenants need to know about releases, without depending on the deployments app.

deployments depends on tenants (rollouts target tenants); onboarding still has to put the
first release on a new tenant. So tenants declares the small interface it needs here, and
deployments registers its implementation when Django starts (DeploymentsConfig.ready).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tenants.app_settings import AppSettings


@dataclass(frozen=True)
class HealthCheck:
    """The release's health route: the request the console sends before traffic moves,
    and what counts as healthy (docs/app-contract.md)."""

    method: str = "GET"
    path: str = "/healthz"  # may carry a query string: /healthz?deep=1
    statuses: str = "200-299"  # statuses and ranges, comma separated: "200-299,301"
    timeout_s: int = 5


@dataclass(frozen=True)
class ReleaseArtifact:
    version: str
    package_type: str  # "Image" or "Zip", as Lambda names them
    image_uri: str = ""  # pinned by digest: <repo uri>@sha256:...
    s3_bucket: str = ""
    s3_key: str = ""
    code_sha256: str = ""  # base64 sha256 Lambda reports as CodeSha256 (zip only)
    runtime: str = ""
    handler: str = ""
    architecture: str = "x86_64"
    memory_mb: int = 256
    timeout_s: int = 30
    migrations: tuple[Any, ...] = field(default=())
    health: HealthCheck = field(default_factory=HealthCheck)
    # What the code expects of its stack: environment, API shape, permissions, alarms.
    app_settings: AppSettings = field(default_factory=AppSettings)


class ReleaseSource(Protocol):
    def newest_version(self) -> str | None: ...

    def versions(self) -> list[str]: ...

    def artifact(self, version: str, *, region: str) -> ReleaseArtifact: ...

    # The artifact copied to the region (and the current AWS account) when missing there.
    def ensure_artifact(self, version: str, *, region: str) -> dict[str, Any]: ...

    def apply_schema(
        self, *, tenant: Any, version: str, on_status: Callable[[str], None]
    ) -> dict[str, Any]: ...


_source: ReleaseSource | None = None


def register(source: ReleaseSource) -> None:
    global _source
    _source = source


def get() -> ReleaseSource:
    if _source is None:
        raise RuntimeError("No release source registered: is 'deployments' installed?")
    return _source
