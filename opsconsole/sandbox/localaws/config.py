"""The local AWS's settings, read once from the environment at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LocalAwsConfig:
    host: str
    port: int
    # The real PostgreSQL that RDS instances, clusters and proxies stand for.
    pg_host: str
    pg_port: int
    pg_user: str
    pg_password: str
    # Where unpacked function code and per-environment scratch space live.
    state_dir: Path
    # Lambda execution environments: how many may be warm at once (all functions), how
    # long an idle one is kept, and how many may run one function version at once.
    max_warm: int
    idle_s: float
    max_per_version: int
    # How long an invoke waits for a busy version's environment before it is throttled.
    queue_s: float = 1.0

    # The address people and the console use (``LOCALAWS_PUBLIC_URL``): what ApiEndpoint
    # reports. Differs from ``endpoint`` when the server binds 0.0.0.0 in a container.
    public_url: str = ""

    # CloudWatch: how often metric alarms are evaluated (CloudWatch: every minute), how
    # long datapoints are kept, and the most values kept in all (under heavy traffic the
    # kept window shrinks below the retention so memory stays bounded).
    alarm_interval_s: float = 60.0
    metric_retention_s: float = 3 * 3600.0
    metric_max_points: int = 2_000_000

    @property
    def endpoint(self) -> str:
        """Where code running beside the server (functions) reaches it."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def public_endpoint(self) -> str:
        return (self.public_url or self.endpoint).rstrip("/")


def from_environment(*, host: str, port: int) -> LocalAwsConfig:
    env = os.environ
    base = Path(env.get("LOCALAWS_STATE_DIR") or Path.cwd() / ".sandbox" / "localaws")
    return LocalAwsConfig(
        host=host,
        port=port,
        pg_host=env.get("SANDBOX_PG_HOST", "127.0.0.1"),
        pg_port=int(env.get("SANDBOX_PG_PORT", "5432")),
        pg_user=env.get("SANDBOX_PG_USER", "postgres"),
        pg_password=env.get("SANDBOX_PG_PASSWORD", ""),
        state_dir=base / str(port),
        max_warm=int(env.get("LOCALAWS_MAX_WARM", "64")),
        idle_s=float(env.get("LOCALAWS_IDLE_S", "300")),
        max_per_version=int(env.get("LOCALAWS_MAX_PER_VERSION", "8")),
        queue_s=float(env.get("LOCALAWS_QUEUE_S", "1.0")),
        public_url=env.get("LOCALAWS_PUBLIC_URL", ""),
        alarm_interval_s=float(env.get("LOCALAWS_ALARM_INTERVAL_S", "60")),
        metric_retention_s=float(env.get("LOCALAWS_METRIC_RETENTION_S", str(3 * 3600))),
        metric_max_points=int(env.get("LOCALAWS_METRIC_MAX_POINTS", "2000000")),
    )
