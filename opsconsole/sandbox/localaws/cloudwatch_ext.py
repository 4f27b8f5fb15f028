"""CloudWatch metrics as CloudWatch answers them: percentiles, fast queries, bounded memory,
and metric alarms evaluated (``alarm_evaluator``).

moto keeps every datum as an object in one list and scans all of it per period of every
query; ``get_metric_data`` fails as a whole when a query asks for a percentile and
``get_metric_statistics`` ignores ExtendedStatistics. Patched here, at the backend level
(inside this process, so whatever protocol botocore speaks - query, JSON or CBOR - lands
in the same code):

- ``put_metric_data`` still validates as moto does, then moves the values into a compact
  per-series store (two float arrays per series, kept in time order): about 16 bytes a
  value instead of a Python object each. moto's ``metric_data`` keeps one datum per series,
  which is all ``list_metrics`` needs.
- ``get_metric_data`` / ``get_metric_statistics`` read that store by (namespace, name),
  with CloudWatch's rules: a series matches on its exact dimension set, periods start at
  StartTime rounded down to the minute (to the period below a minute), empty periods are
  left out, any ``pNN[.N]`` percentile is computed from the stored values (nearest rank;
  statistic sets count only when they hold one value or min == max, as in CloudWatch).
  A query the sandbox cannot answer (metric math beyond a reference to another query, Metrics
  Insights, other extended statistics) comes back empty with a status and a message
  instead of failing the whole call.
- Values older than ``metric_retention_s`` (default 3 hours: a sandbox's charts show the
  last hours, not the 15 days of 1-minute data CloudWatch keeps) are pruned, and a cap on
  stored values (``metric_max_points``) shortens the window further if traffic is heavy.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.cloudwatch import models, responses
from moto.cloudwatch.exceptions import InvalidParameterCombination, InvalidParameterValue
from moto.core.responses import ActionResult
from werkzeug.wrappers import Request, Response

from opsconsole.sandbox.localaws import alarm_evaluator
from opsconsole.sandbox.localaws.config import LocalAwsConfig

STANDARD = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
_PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d+)?|100(\.0+)?)$")

_lock = threading.Lock()  # the server is threaded; the store is plain arrays and dicts
_installed = False


def install(config: LocalAwsConfig) -> None:
    global _installed
    if not _installed:
        _installed = True
        cls = models.CloudWatchBackend
        original_put = cls.put_metric_data

        def put_metric_data(self: Any, namespace: str, metric_data: list[dict[str, Any]]) -> None:
            with _lock:
                start = len(self.metric_data)
                original_put(self, namespace, metric_data)
                added = self.metric_data[start:]
                del self.metric_data[start:]
                store_of(self).add(self, added)

        cls.put_metric_data = put_metric_data  # type: ignore[method-assign]
        cls.get_metric_data = get_metric_data  # type: ignore[method-assign]
        cls.get_metric_statistics = get_metric_statistics  # type: ignore[method-assign]
        responses.CloudWatchResponse.get_metric_statistics = _get_metric_statistics_response  # type: ignore[method-assign]
    alarm_evaluator.start(config)


def route(request: Request) -> Response | None:
    return None


# --- the store ---------------------------------------------------------------------------

Dims = tuple[tuple[str, str], ...]


def epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def dims_key(dimensions: Iterable[Any]) -> Dims:
    """Dimension objects or {Name, Value} dicts, as a sorted tuple."""
    pairs = []
    for d in dimensions or ():
        if isinstance(d, dict):
            pairs.append((str(d.get("Name")), str(d.get("Value"))))
        else:
            pairs.append((str(d.name), str(d.value)))
    return tuple(sorted(pairs))


@dataclass
class Series:
    ts: array = field(default_factory=lambda: array("d"))
    values: array = field(default_factory=lambda: array("d"))
    # Statistic sets: (timestamp, sample count, sum, minimum, maximum), in time order.
    sets_ts: array = field(default_factory=lambda: array("d"))
    sets: list[tuple[float, float, float, float, float]] = field(default_factory=list)

    def add(self, t: float, value: float) -> None:
        if not self.ts or t >= self.ts[-1]:
            self.ts.append(t)
            self.values.append(value)
        else:
            i = bisect_right(self.ts, t)
            self.ts.insert(i, t)
            self.values.insert(i, value)

    def add_set(self, t: float, entry: tuple[float, float, float, float, float]) -> None:
        i = bisect_right(self.sets_ts, t)
        self.sets_ts.insert(i, t)
        self.sets.insert(i, entry)

    def prune(self, cutoff: float) -> int:
        i = bisect_left(self.ts, cutoff)
        j = bisect_left(self.sets_ts, cutoff)
        del self.ts[:i], self.values[:i], self.sets_ts[:j], self.sets[:j]
        return i + j

    def __len__(self) -> int:
        return len(self.ts) + len(self.sets_ts)


SeriesKey = tuple[Dims, str | None]  # dimensions, unit


class Store:
    """One backend's (region's) datapoints, by (namespace, metric name), then series."""

    def __init__(self) -> None:
        self.metrics: dict[tuple[str, str], dict[SeriesKey, Series]] = {}
        self.representatives: dict[tuple[str, str, SeriesKey], Any] = {}
        self.points = 0

    def add(self, backend: Any, data: list[Any]) -> None:
        for md in data:
            series_key = (dims_key(md.dimensions), md.unit)
            by_series = self.metrics.setdefault((md.namespace, md.name), {})
            series = by_series.get(series_key)
            if series is None:
                series = by_series[series_key] = Series()
                # The one datum moto keeps for this series, so ListMetrics lists it.
                self.representatives[(md.namespace, md.name, series_key)] = md
                backend.metric_data.append(md)
            t = epoch(md.timestamp)
            if isinstance(md, models.MetricAggregatedDatum):
                series.add_set(t, (t, md.sample_count, md.sum, md.min, md.max))
            else:
                series.add(t, md.value)
            self.points += 1

    def matching(self, namespace: str, name: str, dims: Dims, unit: str | None) -> list[Series]:
        by_series = self.metrics.get((namespace, name)) or {}
        return [s for (d, u), s in by_series.items() if d == dims and (not unit or u == unit)]

    def unit_of(self, namespace: str, name: str, dims: Dims) -> str | None:
        for (d, u), _ in (self.metrics.get((namespace, name)) or {}).items():
            if d == dims and u:
                return u
        return None

    def prune(self, backend: Any, cutoff: float) -> None:
        gone = []
        for metric, by_series in self.metrics.items():
            for key, series in list(by_series.items()):
                self.points -= series.prune(cutoff)
                if not len(series):
                    del by_series[key]
                    gone.append((*metric, key))
        for key in gone:
            md = self.representatives.pop(key, None)
            if md is not None:
                with contextlib.suppress(ValueError):
                    backend.metric_data.remove(md)
        self.metrics = {m: s for m, s in self.metrics.items() if s}


def store_of(backend: Any) -> Store:
    # On the backend object, so moto's reset (new backends) resets it too.
    store = getattr(backend, "_localaws_store", None)
    if store is None:
        store = backend._localaws_store = Store()
        # Datums moto held before the patch (none in a fresh server) move in too.
        old, backend.metric_data = list(backend.metric_data), []
        store.add(backend, old)
    return store


def prune(backend: Any, *, retention_s: float, max_points: int, now: float) -> None:
    with _lock:
        store = store_of(backend)
        cutoff = now - retention_s
        store.prune(backend, cutoff)
        while store.points > max_points and cutoff < now:
            # Heavy traffic: keep the most recent half of the window, again if needed.
            cutoff = now - (now - cutoff) / 2
            store.prune(backend, cutoff)


# --- statistics --------------------------------------------------------------------------


def is_percentile(stat: str) -> bool:
    return bool(_PERCENTILE.match(stat or ""))


def percentile(pairs: list[tuple[float, float]], p: float) -> float | None:
    """Nearest-rank percentile of (value, weight) pairs, sorted by value."""
    total = sum(w for _, w in pairs)
    if total <= 0:
        return None
    rank = max(1.0, math.ceil(p / 100.0 * total))
    seen = 0.0
    for value, weight in pairs:
        seen += weight
        if seen >= rank:
            return value
    return pairs[-1][0]


@dataclass
class Bucket:
    values: list[float] = field(default_factory=list)
    sets: list[tuple[float, float, float, float, float]] = field(default_factory=list)

    def count(self) -> float:
        return len(self.values) + sum(s[1] for s in self.sets)

    def stat(self, stat: str) -> float | None:
        if stat == "SampleCount":
            return self.count()
        if stat == "Sum":
            return math.fsum(self.values) + sum(s[2] for s in self.sets)
        if stat == "Average":
            n = self.count()
            return (math.fsum(self.values) + sum(s[2] for s in self.sets)) / n if n else None
        if stat == "Minimum":
            return min([*self.values, *(s[3] for s in self.sets)], default=None)
        if stat == "Maximum":
            return max([*self.values, *(s[4] for s in self.sets)], default=None)
        if is_percentile(stat):
            # A statistic set says nothing about its distribution unless it is one value.
            pairs = [(v, 1.0) for v in self.values]
            pairs += [(s[3], s[1]) for s in self.sets if s[1] == 1 or s[3] == s[4]]
            pairs.sort(key=lambda pair: pair[0])
            return percentile(pairs, float(stat[1:]))
        raise KeyError(stat)


def buckets(
    series: list[Series], start: float, end: float, period: int
) -> list[tuple[float, Bucket]]:
    """Non-empty (period start, values) in [start, end), oldest first."""
    out: list[tuple[float, Bucket]] = []
    t = start
    while t < end:
        stop = min(t + period, end)
        bucket = Bucket()
        for s in series:
            lo, hi = bisect_left(s.ts, t), bisect_left(s.ts, stop)
            if hi > lo:
                bucket.values.extend(s.values[lo:hi])
            lo, hi = bisect_left(s.sets_ts, t), bisect_left(s.sets_ts, stop)
            if hi > lo:
                bucket.sets.extend(s.sets[lo:hi])
        if bucket.values or bucket.sets:
            out.append((t, bucket))
        t += period
    return out


def aligned_start(start: float, period: int) -> float:
    """CloudWatch rounds StartTime down to the minute (high-resolution periods: to the
    period)."""
    step = 60 if period >= 60 else period
    return math.floor(start / step) * step


def series_buckets(
    backend: Any,
    *,
    namespace: str,
    name: str,
    dimensions: Iterable[Any],
    unit: str | None,
    start: float,
    end: float,
    period: int,
) -> list[tuple[float, Bucket]]:
    with _lock:
        store = store_of(backend)
        series = store.matching(namespace, name, dims_key(dimensions), unit)
        return buckets(series, start, end, period)


# --- GetMetricData -----------------------------------------------------------------------


def _result(query: dict[str, Any], label: str, values: list, stamps: list, **extra: Any) -> dict:
    return {
        "id": query["Id"],
        "label": label,
        "values": values,
        "timestamps": stamps,
        "status_code": extra.get("status", "Complete"),
        **({"messages": extra["messages"]} if extra.get("messages") else {}),
    }


def _unanswered(query: dict[str, Any], why: str) -> dict:
    return _result(
        query,
        query.get("Label") or query["Id"],
        [],
        [],
        status="InternalError",
        messages=[{"Code": "Unsupported", "Value": f"The sandbox's local AWS {why}."}],
    )


def get_metric_data(
    self: Any,
    queries: list[dict[str, Any]],
    start_time: datetime,
    end_time: datetime,
    scan_by: str = "TimestampAscending",
) -> list[dict[str, Any]]:
    start, end = epoch(start_time), epoch(end_time)
    if start > end:
        raise models.ValidationError("The parameter EndTime must be greater than StartTime.")
    if int(start) == int(end):
        raise models.ValidationError("The parameter StartTime must not equal parameter EndTime.")
    descending = scan_by == "TimestampDescending"
    answered: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for query in queries:
        if "MetricStat" in query:
            result = _metric_stat(self, query, start, end)
        elif str(query.get("Expression", "")).strip() in answered:
            # The one kind of expression moto knew: another query's id.
            source = answered[str(query["Expression"]).strip()]
            result = _result(
                query, query.get("Label") or query["Id"], source["values"], source["timestamps"]
            )
        elif str(query.get("Expression", "")).lstrip().upper().startswith("SELECT"):
            result = _unanswered(query, "does not run Metrics Insights queries")
        else:
            result = _unanswered(query, "does not evaluate metric math")
        answered[query["Id"]] = result
        if query.get("ReturnData", True) in (True, "true", "True", None):
            out.append(result)
    if descending:
        out = [{**r, "values": r["values"][::-1], "timestamps": r["timestamps"][::-1]} for r in out]
    return out


def _metric_stat(backend: Any, query: dict[str, Any], start: float, end: float) -> dict:
    stat_spec = query["MetricStat"]
    metric = stat_spec["Metric"]
    stat = stat_spec["Stat"]
    label = query.get("Label") or f"{metric['MetricName']} {stat}"
    if stat not in STANDARD and not is_percentile(stat):
        return _unanswered(query, f"does not compute the statistic {stat}")
    period = int(stat_spec["Period"])
    rows = series_buckets(
        backend,
        namespace=metric.get("Namespace"),
        name=metric["MetricName"],
        dimensions=metric.get("Dimensions", []),
        unit=stat_spec.get("Unit"),
        start=aligned_start(start, period),
        end=end,
        period=period,
    )
    values, stamps = [], []
    for t, bucket in rows:
        value = bucket.stat(stat)
        if value is not None:
            values.append(value)
            stamps.append(datetime.fromtimestamp(t, UTC))
    return _result(query, label, values, stamps)


# --- GetMetricStatistics -----------------------------------------------------------------


def get_metric_statistics(
    self: Any,
    namespace: str,
    metric_name: str,
    start_time: datetime,
    end_time: datetime,
    period: int,
    stats: list[str],
    dimensions: list[dict[str, str]],
    unit: str | None = None,
    extended_stats: list[str] | None = None,
) -> list[dict[str, Any]]:
    start, end = epoch(start_time), epoch(end_time)
    if int(start) >= int(end):
        raise InvalidParameterValue(
            "The parameter StartTime must be less than the parameter EndTime."
        )
    extended = list(extended_stats or [])
    for stat in extended:
        if not is_percentile(stat):
            raise InvalidParameterValue(
                f"The value {stat} for parameter ExtendedStatistics is not supported."
            )
    period = int(period)
    rows = series_buckets(
        self,
        namespace=namespace,
        name=metric_name,
        dimensions=dimensions,
        unit=unit,
        start=aligned_start(start, period),
        end=end,
        period=period,
    )
    with _lock:
        series_unit = unit or store_of(self).unit_of(namespace, metric_name, dims_key(dimensions))
    points = []
    for t, bucket in rows:
        point: dict[str, Any] = {
            "Timestamp": datetime.fromtimestamp(t, UTC),
            "Unit": series_unit or "None",
        }
        for stat in stats:
            point[stat] = bucket.stat(stat)
        if extended:
            values = {stat: bucket.stat(stat) for stat in extended}
            point["ExtendedStatistics"] = {k: v for k, v in values.items() if v is not None}
        points.append(point)
    return points


def _get_metric_statistics_response(self: Any) -> ActionResult:
    statistics = self._get_param("Statistics", [])
    extended = self._get_param("ExtendedStatistics", [])
    if not statistics and not extended:
        raise InvalidParameterCombination("Must specify either Statistics or ExtendedStatistics")
    metric_name = self._get_param("MetricName")
    datapoints = self.cloudwatch_backend.get_metric_statistics(
        self._get_param("Namespace"),
        metric_name,
        self._get_param("StartTime"),
        self._get_param("EndTime"),
        self._get_int_param("Period"),
        statistics,
        unit=self._get_param("Unit"),
        dimensions=self._get_param("Dimensions", []),
        extended_stats=extended,
    )
    return ActionResult({"Label": metric_name, "Datapoints": datapoints})
