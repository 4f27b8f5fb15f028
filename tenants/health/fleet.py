"""Fleet health: every tenant's status, error rate and p95 duration over the last hour.

The page never asks AWS (tenants.health.fleet_refresh does, in a worker): it reads what the
refresh left in the cache (tenants.health.fleet_store) and shows its age. The status of
every tenant comes from its alarm states (one DescribeAlarms per account and region for
the whole fleet) and its records; the metric columns are there for the tenants someone
looked at (the page marks the rows it shows, the worker fetches those), and say "not
fetched yet" for the others.

SQL: the tenants (one narrow query), the missing resource records (one query) and the
shown page's details (one query): the same number for 10 tenants or 20,000.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import QuerySet

from opsconsole.awsaccounts.models import AwsAccount
from opsconsole.core.humanize import duration_text
from tenants.health import cache as health_cache
from tenants.health import fleet_store
from tenants.health.fleet_store import AlarmsEntry, MetricsEntry
from tenants.health.status import (
    DEGRADED,
    DOWN,
    HEALTHY,
    Signals,
    assess,
    error_rate,
    rate_finding,
)
from tenants.models import ResourceStatus, Tenant, TenantResource, TenantStatus

CRITICAL_KINDS = {"function", "alias", "api", "database", "db_instance", "db_cluster"}
# While a row on screen has no numbers yet, the table asks again this often (the worker
# fetches them in its next round).
_UNFETCHED_POLL_S = 15


# --- the table ---------------------------------------------------------------------------
#
# Two passes. Every tenant matching the filters gets its health level, error rate and p95
# from a narrow query and the cached numbers (what sorting and the health filter need);
# only the rows of the page shown are then read in full and given their reasons.

_STATUS_LABELS = dict(TenantStatus.choices)
_DETAIL_FIELDS = (
    "id",
    "name",
    "ring",
    "isolation",
    "current_release",
    "desired_release",
    "created_at",
)


@dataclass(slots=True)
class FleetRow:
    """One row of the page shown."""

    id: int
    slug: str
    status: str
    status_reason: str
    region: str
    health: str
    invocations: float | None
    errors: float | None
    error_rate: float | None
    p95_ms: float | None
    health_reason: str = ""
    # Seconds since the worker read this tenant's numbers; None: not fetched yet.
    metrics_age_s: int | None = None
    name: str = ""
    ring: int = 0
    isolation: str = ""
    current_release: str = ""
    desired_release: str = ""
    created_at: datetime | None = None

    @property
    def status_display(self) -> str:
        return _STATUS_LABELS.get(self.status, self.status)

    @property
    def error_pct(self) -> float | None:
        return None if self.error_rate is None else self.error_rate * 100


def _missing_by_tenant() -> dict[int, list[tuple[str, str]]]:
    rows = TenantResource.objects.filter(
        status__in=[ResourceStatus.MISSING, ResourceStatus.DELETED],
        tenant__status__in=[TenantStatus.ACTIVE, TenantStatus.SUSPENDED, TenantStatus.FAILED],
    ).values_list("tenant_id", "kind", "name")
    out: dict[int, list[tuple[str, str]]] = {}
    for tenant_id, kind, name in rows:
        out.setdefault(tenant_id, []).append((kind, name))
    return out


FLEET_SORTS = ("health", "errors", "p95")
_LEVEL_ORDER = {DOWN: 0, DEGRADED: 1, HEALTHY: 2}
_LAST = float("inf")


def _ago(age_s: float) -> str:
    return f"{duration_text(age_s)} ago"


# (id, slug, status, status_reason, region, aws_account_id): all a tenant's level needs.
_BASE_FIELDS = ("id", "slug", "status", "status_reason", "region", "aws_account_id")


@dataclass
class FleetTable:
    """The fleet's health. ``positions`` (filtered and sorted) index the tenants read;
    paginate them and ``detail`` the page's."""

    positions: list[int]
    health_counts: dict[str, int]
    notes: list[str] = field(default_factory=list)
    # How often the table asks for itself again (htmx): the refresh interval, sooner while
    # rows on screen wait for their first numbers (``detail`` sets that).
    poll_s: int = 0
    refresh_s: int = 0
    age_s: int | None = None  # of the oldest alarm states the levels come from
    base: list[tuple] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)
    invocations: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    fetched_at: dict[str, float] = field(default_factory=dict)
    p95: dict[str, float] = field(default_factory=dict)
    missing: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    alarms: dict[str, list[str]] = field(default_factory=dict)
    # Group (fleet_store.group_key) -> why its alarm states are unknown (none kept).
    unavailable: dict[str, str] = field(default_factory=dict)

    def signals(self, row: tuple) -> Signals:
        tenant_id, slug, status, status_reason, region, account_id = row
        gone = self.missing.get(tenant_id, [])
        return Signals(
            tenant_status=status,
            tenant_status_reason=status_reason,
            missing=[f"{kind} {name}" for kind, name in gone],
            missing_critical=[f"{k} {n}" for k, n in gone if k in CRITICAL_KINDS],
            alarms_firing=self.alarms.get(slug, []),
            invocations=self.invocations.get(slug),
            errors=self.errors.get(slug),
            metrics_error=self.unavailable.get(fleet_store.group_key(account_id, region), ""),
        )

    def _group_unavailable(self, account_id: int | None, region: str) -> bool:
        return fleet_store.group_key(account_id, region) in self.unavailable

    def level(self, row: tuple) -> str:
        """A tenant's status. Most are active with nothing missing or firing: theirs is
        the error rate's verdict alone (when known), as ``assess`` would find it."""
        tenant_id, slug, status, _, region, account_id = row
        if (
            status == TenantStatus.ACTIVE
            and tenant_id not in self.missing
            and slug not in self.alarms
            and not (self.unavailable and self._group_unavailable(account_id, region))
        ):
            finding = rate_finding(self.errors.get(slug), self.invocations.get(slug), "")
            return finding[0] if finding else HEALTHY
        return assess(self.signals(row))[0]

    def detail(self, positions: list[int]) -> list[FleetRow]:
        """The rows at ``positions``, read in full (one query), with their reasons and the
        age of their numbers."""
        now = health_cache.clock()
        rows = []
        for position in positions:
            row = self.base[position]
            tenant_id, slug, status, status_reason, region, _ = row
            inv, err = self.invocations.get(slug), self.errors.get(slug)
            at = self.fetched_at.get(slug)
            rows.append(
                FleetRow(
                    id=tenant_id,
                    slug=slug,
                    status=status,
                    status_reason=status_reason,
                    region=region,
                    health=self.levels[position],
                    invocations=inv,
                    errors=err,
                    error_rate=error_rate(err, inv),
                    p95_ms=self.p95.get(slug),
                    health_reason=assess(self.signals(row))[1],
                    metrics_age_s=None if at is None else max(0, int(now - at)),
                )
            )
        if any(r.metrics_age_s is None for r in rows):
            self.poll_s = min(self.poll_s, _UNFETCHED_POLL_S)
        details = Tenant.objects.filter(id__in=[r.id for r in rows]).values(*_DETAIL_FIELDS)
        by_id = {values["id"]: values for values in details}
        for row in rows:
            for key, value in by_id.get(row.id, {}).items():
                setattr(row, key, value)
        return rows


def _group_labels(groups: set[tuple[int | None, str]]) -> dict[str, str]:
    """How notes name a group: its region, and its account when not the console's own
    (one query, only when the fleet spans accounts)."""
    ids = {a for a, _ in groups if a}
    names = dict(AwsAccount.objects.filter(id__in=ids).values_list("id", "name")) if ids else {}
    return {
        fleet_store.group_key(a, r): f"{r} (account {names.get(a, a)})" if a else r
        for a, r in groups
    }


def _read_cache(table: FleetTable, groups: set[tuple[int | None, str]]) -> None:
    """The refresh's entries of every group into ``table``, with notes for what is
    missing, failing or old."""
    now = health_cache.clock()
    refresh = settings.HEALTH_FLEET_REFRESH_SECONDS
    again = f"The worker tries again in about {duration_text(refresh)}."
    labels = _group_labels(groups)
    entries = fleet_store.read_groups(sorted(labels))
    ages = []
    for group, (alarms, metrics) in entries.items():
        label = labels[group]
        _read_alarms(table, group, label, alarms, now, again)
        if alarms.at is not None:
            ages.append(now - alarms.at)
        _read_metrics(table, label, metrics, now, again)
    table.age_s = int(max(ages)) if ages else None


def _read_alarms(
    table: FleetTable, group: str, label: str, entry: AlarmsEntry, now: float, again: str
) -> None:
    if entry.at is None:
        if entry.error:
            table.unavailable[group] = f"alarm states unavailable: {entry.error}"
            table.notes.append(f"Alarm states of {label} are unavailable: {entry.error}. {again}")
        else:
            table.unavailable[group] = "alarm states not fetched yet"
            table.notes.append(
                f"Alarm states of {label} not fetched yet: a worker reads them every "
                f"{duration_text(table.refresh_s)}."
            )
        return
    table.alarms.update(entry.alarms)
    age = now - entry.at
    if entry.error:
        table.notes.append(f"Alarm states of {label} are from {_ago(age)}: {entry.error}. {again}")
    elif age > fleet_store.watch_seconds():
        table.notes.append(
            f"Alarm states of {label} are from {_ago(age)}: no refresh since. Are the "
            "Celery worker and beat running?"
        )


def _read_metrics(table: FleetTable, label: str, entry: MetricsEntry, now: float, again: str):
    table.invocations.update(entry.inv)
    table.errors.update(entry.err)
    table.fetched_at.update(entry.at)
    table.p95.update(entry.p95)
    if entry.error:
        if entry.at:
            oldest = now - min(entry.at.values())
            what = f"Metrics of {label} are from up to {_ago(oldest)}"
        else:
            what = f"Metrics of {label} are unavailable right now"
        table.notes.append(f"{what}: {entry.error}. {again}")
    if entry.p95_error:
        retry = settings.HEALTH_PERCENTILE_RETRY_SECONDS
        table.notes.append(
            f"p95 duration of {label} is unavailable right now: {entry.p95_error}. "
            f"The worker tries again in about {duration_text(retry)}."
        )


def fleet_table(tenants: QuerySet[Tenant], *, health: str = "", sort: str = "") -> FleetTable:
    """Every tenant of ``tenants`` (already filtered and ordered) with its health level,
    filtered by ``health`` and sorted by health, error rate or p95 when ``sort`` says
    (tenants without numbers last: nobody looked at them yet).

    SQL: the tenants' ids, slugs and statuses (one query) and the missing resource records
    (one query); the numbers come from the cache, never from AWS.
    """
    base = list(tenants.values_list(*_BASE_FIELDS))
    refresh = settings.HEALTH_FLEET_REFRESH_SECONDS
    table = FleetTable(
        positions=[],
        health_counts=dict.fromkeys((HEALTHY, DEGRADED, DOWN), 0),
        base=base,
        poll_s=refresh,
        refresh_s=refresh,
    )
    table.missing = _missing_by_tenant()
    _read_cache(table, {(row[5], row[4]) for row in base})

    levels = table.levels = [table.level(row) for row in base]
    counts = table.health_counts
    for level in levels:
        counts[level] += 1
    positions = list(range(len(base)))
    if health:
        positions = [i for i in positions if levels[i] == health]
    # The database ordered by slug for these sorts; a stable sort on one number keeps
    # that order among equals. Worst first, unknown numbers last.
    if sort == "health":
        positions.sort(key=lambda i: _LEVEL_ORDER[levels[i]])
    elif sort == "errors":
        inv, err = table.invocations, table.errors

        def rate_key(i: int) -> float:
            rate = error_rate(err.get(base[i][1]), inv.get(base[i][1]))
            return _LAST if rate is None else -rate

        positions.sort(key=rate_key)
    elif sort == "p95":
        p95 = table.p95
        positions.sort(key=lambda i: -p95.get(base[i][1], -_LAST))
    table.positions = positions
    return table
