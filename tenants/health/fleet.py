"""Fleet health: every tenant's status, error rate and p95 duration over the last hour.

The page never asks AWS (tenants.health.fleet_refresh does, in a worker): it reads what the
refresh left in each tenant's ``FleetHealth`` row and in the cache (tenants.health.
fleet_store) and shows its age. The status of every tenant comes from its alarm states (one
DescribeAlarms per account and region for the whole fleet), its records and its lifecycle
status; the metric columns are there for the tenants someone looked at (the page marks
the rows it shows, the worker fetches those), and say "not fetched yet" for the others.

SQL, the same for 10 tenants or 20,000: the health counts (one grouped query), the
page's ids, sorted, filtered and sliced by the database from two covering indexes, and
those rows in full. Python sees one page of rows; the notes speak of the accounts and
regions on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import Case, Count, F, IntegerField, QuerySet, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.urls import reverse

from opsconsole.awsaccounts.models import AwsAccount
from opsconsole.core.humanize import duration_text
from tenants.health import cache as health_cache
from tenants.health import fleet_store
from tenants.health.fleet_store import CRITICAL_KINDS, AlarmsEntry, MetricsEntry
from tenants.health.status import (
    DEGRADED,
    DOWN,
    HEALTHY,
    RANK,
    Signals,
    assess,
    error_rate,
)
from tenants.models import Tenant, TenantStatus

# While a row on screen has no numbers yet, the table asks again this often (the worker
# fetches them in its next round).
_UNFETCHED_POLL_S = 15
_NOT_READ = "alarm states not fetched yet"

_STATUS_LABELS = dict(TenantStatus.choices)
_LEVELS = {rank: level for level, rank in RANK.items()}
# The statuses tenants.health.status judges down whatever else is known (its _LIFECYCLE).
_LIFECYCLE_DOWN = [
    TenantStatus.FAILED,
    TenantStatus.SUSPENDED,
    TenantStatus.OFFBOARDING,
    TenantStatus.OFFBOARDED,
]

FLEET_SORTS = ("health", "errors", "p95")
# Worst first; unknown numbers last (nobody looked at those tenants yet); then by slug.
_ORDER = {
    "health": (F("health_rank").desc(), "slug"),
    "errors": (F("fleet_health__error_rate").desc(nulls_last=True), "slug"),
    "p95": (F("fleet_health__p95_ms").desc(nulls_last=True), "slug"),
}
_ROW_FIELDS = (
    "id",
    "slug",
    "name",
    "status",
    "status_reason",
    "region",
    "aws_account_id",
    "ring",
    "isolation",
    "current_release",
    "desired_release",
    "created_at",
    "health_rank",
    "fleet_health__alarms",
    "fleet_health__missing",
    "fleet_health__unavailable",
    "fleet_health__invocations",
    "fleet_health__errors",
    "fleet_health__metrics_at",
    "fleet_health__p95_ms",
    "fleet_health__signals_rank",
)


def health_rank() -> Greatest:
    """A tenant's level as a number (tenants.health.status.RANK), in SQL: the worker's
    verdict on its records, alarms and numbers, or degraded before its first round, and
    down whatever those say when its lifecycle status is."""
    return Greatest(
        Case(
            When(status__in=_LIFECYCLE_DOWN, then=Value(RANK[DOWN])),
            default=Value(RANK[HEALTHY]),
        ),
        Coalesce(F("fleet_health__signals_rank"), Value(RANK[DEGRADED])),
        output_field=IntegerField(),
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
    detail_url: str = ""
    health_url: str = ""
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


def _ago(age_s: float) -> str:
    return f"{duration_text(age_s)} ago"


@dataclass
class FleetTable:
    """The fleet's health over ``rows`` (filtered and ordered in SQL). A sequence of
    FleetRow as long as the rows matching: slice it (Paginator does) to read a page."""

    rows: QuerySet
    health_counts: dict[str, int]
    total: int = 0
    notes: list[str] = field(default_factory=list)
    # How often the table asks for itself again (htmx): the refresh interval, sooner while
    # rows on screen wait for their first numbers (reading them sets that).
    poll_s: int = 0
    refresh_s: int = 0
    age_s: int | None = None  # of the oldest alarm states the levels come from

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, index: slice) -> list[FleetRow]:
        """The rows in ``index`` (two queries: their ids, then them), with their reasons
        and the age of their numbers."""
        if not isinstance(index, slice):
            raise TypeError("read the fleet's rows by slice")
        now = health_cache.clock()
        # The page's ids first, ordered from the two covering indexes alone, then those
        # rows in full: the database never sorts 20,000 wide rows to return 100.
        ids = list(self.rows.values_list("id", flat=True)[index])
        by_id = {
            values["id"]: values
            for values in self.rows.order_by().filter(id__in=ids).values(*_ROW_FIELDS)
        }
        found = [by_id[i] for i in ids if i in by_id]
        rows = [_row(values, now) for values in found]
        # Each row's two links from one reverse() apiece: two per row were a tenth of the
        # page's time at 100 rows.
        detail, health = _url_maker("tenants:detail"), _url_maker("tenants:health")
        for row in rows:
            row.detail_url, row.health_url = detail(row.slug), health(row.slug)
        if any(r.metrics_age_s is None for r in rows):
            self.poll_s = min(self.poll_s, _UNFETCHED_POLL_S)
        # The notes speak of the groups on screen: no query over the whole fleet for them.
        _read_cache(self, {(values["aws_account_id"], values["region"]) for values in found})
        return rows


def _url_maker(name: str):
    """slug -> the URL ``name`` has for it, as reverse() would give (script prefix too)."""
    marker = "0slug0"
    pattern = reverse(name, args=[marker])
    return lambda slug: pattern.replace(marker, slug)


def _row(values: dict, now: float) -> FleetRow:
    def kept(name: str):
        return values[f"fleet_health__{name}"]

    missing = kept("missing") or []
    read = kept("signals_rank") is not None
    inv, err = kept("invocations"), kept("errors")
    _, reason = assess(
        Signals(
            tenant_status=values["status"],
            tenant_status_reason=values["status_reason"],
            missing=[f"{kind} {name}" for kind, name in missing],
            missing_critical=[f"{k} {n}" for k, n in missing if k in CRITICAL_KINDS],
            alarms_firing=kept("alarms") or [],
            invocations=inv,
            errors=err,
            metrics_error=kept("unavailable") if read else _NOT_READ,
        )
    )
    at = fleet_store.seconds(kept("metrics_at"))
    return FleetRow(
        id=values["id"],
        slug=values["slug"],
        status=values["status"],
        status_reason=values["status_reason"],
        region=values["region"],
        # The SQL's level, which sorted, filtered and counted this row; ``assess`` finds
        # the same from the same facts (tests/tenants/test_fleet_sql.py holds them equal).
        health=_LEVELS[values["health_rank"]],
        invocations=inv,
        errors=err,
        error_rate=error_rate(err, inv),
        p95_ms=kept("p95_ms"),
        health_reason=reason,
        metrics_age_s=None if at is None else max(0, int(now - at)),
        name=values["name"],
        ring=values["ring"],
        isolation=values["isolation"],
        current_release=values["current_release"],
        desired_release=values["desired_release"],
        created_at=values["created_at"],
    )


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
    """The refresh's entries of every group: notes for what is missing, failing or old."""
    table.notes = []
    now = health_cache.clock()
    refresh = settings.HEALTH_FLEET_REFRESH_SECONDS
    again = f"The worker tries again in about {duration_text(refresh)}."
    labels = _group_labels(groups)
    entries = fleet_store.read_groups(sorted(labels))
    ages = []
    for group, (alarms, metrics) in entries.items():
        label = labels[group]
        _read_alarms(table, label, alarms, now, again)
        if alarms.at is not None:
            ages.append(now - alarms.at)
        _read_metrics(table, label, metrics, now, again)
    table.age_s = int(max(ages)) if ages else None


def _read_alarms(table: FleetTable, label: str, entry: AlarmsEntry, now: float, again: str):
    if entry.at is None:
        if entry.error:
            table.notes.append(f"Alarm states of {label} are unavailable: {entry.error}. {again}")
        else:
            table.notes.append(
                f"Alarm states of {label} not fetched yet: a worker reads them every "
                f"{duration_text(table.refresh_s)}."
            )
        return
    age = now - entry.at
    if entry.error:
        table.notes.append(f"Alarm states of {label} are from {_ago(age)}: {entry.error}. {again}")
    elif age > fleet_store.watch_seconds():
        table.notes.append(
            f"Alarm states of {label} are from {_ago(age)}: no refresh since. Are the "
            "Celery worker and beat running?"
        )


def _read_metrics(table: FleetTable, label: str, entry: MetricsEntry, now: float, again: str):
    if entry.error:
        if entry.oldest_at is not None:
            what = f"Metrics of {label} are from up to {_ago(now - entry.oldest_at)}"
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
    """The tenants of ``tenants`` (already filtered and ordered) with their health level,
    filtered by ``health`` and ordered by health, error rate or p95 when ``sort`` says
    (worst first, tenants without numbers last: nobody looked at them yet).

    SQL here: the health counts (one query); slicing the table reads its rows (two more)
    and the notes of their groups. The numbers come from the rows and the cache, never
    from AWS.
    """
    refresh = settings.HEALTH_FLEET_REFRESH_SECONDS
    ranked = tenants.annotate(health_rank=health_rank())
    by_rank = dict(ranked.order_by().values_list("health_rank").annotate(n=Count("pk")))
    counts = {level: by_rank.get(RANK[level], 0) for level in (HEALTHY, DEGRADED, DOWN)}
    if health:
        ranked = ranked.filter(health_rank=RANK[health])
    if sort in _ORDER:
        ranked = ranked.order_by(*_ORDER[sort])
    table = FleetTable(
        rows=ranked,
        health_counts=counts,
        total=counts[health] if health else sum(counts.values()),
        poll_s=refresh,
        refresh_s=refresh,
    )
    return table
