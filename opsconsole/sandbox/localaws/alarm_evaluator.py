"""Metric alarms evaluated as CloudWatch evaluates them (moto never does).

A daemon thread wakes every ``alarm_interval_s`` (CloudWatch: every minute) and, in every
region, evaluates each metric alarm over its last ``EvaluationPeriods`` complete periods
(aligned to multiples of ``Period``, as CloudWatch's are): the alarm's Statistic or
ExtendedStatistic per period from the stored values, each period breaching or not against
``Threshold`` by ``ComparisonOperator``, ALARM when at least ``DatapointsToAlarm`` (default
``EvaluationPeriods``) breach. Missing periods follow ``TreatMissingData`` as CloudWatch
documents: ``breaching`` / ``notBreaching`` fill them in; ``missing`` (the default) and
``ignore`` judge the present ones (with fewer than M present, ALARM only when all present
breach), and when none is present ``missing`` goes INSUFFICIENT_DATA while ``ignore`` keeps
the state. Only a change of state is written (``set_alarm_state``: history, reason text and
reason data as CloudWatch writes them). Every change of state, the evaluator's or a
SetAlarmState call's (CloudWatch: "the action configured for the appropriate state is
invoked"), then publishes CloudWatch's notification to each SNS topic of the new state's
actions when actions are enabled (``sns_delivery`` delivers it to HTTP(S) subscribers).

Not evaluated: metric math and anomaly-detection alarms (left INSUFFICIENT_DATA with a
reason that says so, never a made-up OK) and composite alarms (left as they are).

New alarms start in INSUFFICIENT_DATA and an updated alarm keeps its state, as in
CloudWatch (moto starts every PutMetricAlarm at OK).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from moto.cloudwatch import models

from opsconsole.sandbox.localaws import cloudwatch_ext
from opsconsole.sandbox.localaws.config import LocalAwsConfig
from opsconsole.sandbox.localaws.moto_state import ACCOUNT_ID, backend, regions_with

logger = logging.getLogger(__name__)

NOT_EVALUATED = "The sandbox's local AWS does not evaluate metric math or anomaly detection alarms."
_OPERATORS = {
    "GreaterThanOrEqualToThreshold": ("greater than or equal to", lambda v, t: v >= t),
    "GreaterThanThreshold": ("greater than", lambda v, t: v > t),
    "LessThanThreshold": ("less than", lambda v, t: v < t),
    "LessThanOrEqualToThreshold": ("less than or equal to", lambda v, t: v <= t),
}
_REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
    "eu-west-2": "EU (London)",
    "eu-west-3": "EU (Paris)",
    "eu-central-1": "EU (Frankfurt)",
    "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)",
    "ap-northeast-1": "Asia Pacific (Tokyo)",
}

_thread: threading.Thread | None = None
_patched = False


def start(config: LocalAwsConfig) -> None:
    global _thread, _patched
    if not _patched:
        _patched = True
        _patch_put_metric_alarm()
        _patch_set_alarm_state()
    if _thread is None:
        _thread = threading.Thread(
            target=_loop, args=(config,), name="localaws-alarm-evaluator", daemon=True
        )
        _thread.start()


def _patch_put_metric_alarm() -> None:
    cls = models.CloudWatchBackend
    original = cls.put_metric_alarm

    def put_metric_alarm(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = kwargs.get("name", args[0] if args else None)
        previous = self.alarms.get(name)
        alarm = original(self, *args, **kwargs)
        if previous is not None:
            # "If you update an existing alarm, its state is left unchanged."
            for attr in (
                "state_value",
                "state_reason",
                "state_reason_data",
                "state_updated_timestamp",
                "history",
            ):
                setattr(alarm, attr, getattr(previous, attr))
        else:
            alarm.state_value = "INSUFFICIENT_DATA"
        return alarm

    cls.put_metric_alarm = put_metric_alarm  # type: ignore[method-assign]


def _patch_set_alarm_state() -> None:
    cls = models.CloudWatchBackend
    original = cls.set_alarm_state

    def set_alarm_state(
        self: Any, alarm_name: str, reason: str, reason_data: str, state_value: str
    ) -> None:
        alarm = self.alarms.get(alarm_name)
        old = alarm.state_value if alarm is not None else None
        original(self, alarm_name, reason, reason_data, state_value)
        alarm = self.alarms[alarm_name]
        if old != state_value and alarm.actions_enabled:
            changed = cloudwatch_ext.epoch(alarm.state_updated_timestamp)
            actions = {
                "ALARM": alarm.alarm_actions,
                "OK": alarm.ok_actions,
                "INSUFFICIENT_DATA": alarm.insufficient_data_actions,
            }[state_value]
            for arn in actions or []:
                _notify(arn, alarm, self.region_name, old, state_value, reason, changed)

    cls.set_alarm_state = set_alarm_state  # type: ignore[method-assign]


def _loop(config: LocalAwsConfig) -> None:
    interval = max(0.2, float(config.alarm_interval_s))
    last_prune = 0.0
    while True:
        # Ticks just after multiples of the interval, like CloudWatch's minute, so the
        # datapoints of the period that just ended have arrived.
        offset = min(5.0, interval / 10)
        time.sleep(interval - ((time.time() - offset) % interval))
        now = time.time()
        for region in regions_with("cloudwatch"):
            try:
                cw = backend("cloudwatch", region)
                if now - last_prune >= min(60.0, config.metric_retention_s):
                    cloudwatch_ext.prune(
                        cw,
                        retention_s=config.metric_retention_s,
                        max_points=config.metric_max_points,
                        now=now,
                    )
                evaluate_region(cw, region, now)
            except Exception:  # noqa: BLE001 - one region's failure must not stop the thread
                logger.exception("alarm evaluation failed in %s", region)
        if now - last_prune >= min(60.0, config.metric_retention_s):
            last_prune = now


def evaluate_region(cw: Any, region: str, now: float) -> None:
    for alarm in list(cw.alarms.values()):
        if alarm.rule is not None:
            continue  # composite
        try:
            evaluate(cw, region, alarm, now)
        except Exception:  # noqa: BLE001 - a malformed alarm must not hide the others
            logger.exception("evaluating alarm %s failed", alarm.name)


# --- one alarm ---------------------------------------------------------------------------


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _short(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%d/%m/%y %H:%M:%S")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def evaluate(cw: Any, region: str, alarm: Any, now: float) -> None:
    operator = _OPERATORS.get(alarm.comparison_operator or "")
    stat = alarm.extended_statistic or alarm.statistic
    if alarm.metric_data_queries or alarm.threshold_metric_id or operator is None or not stat:
        if alarm.state_value != "INSUFFICIENT_DATA" or alarm.state_reason != NOT_EVALUATED:
            _transition(cw, region, alarm, "INSUFFICIENT_DATA", NOT_EVALUATED, {}, now)
        return
    phrase, breaches = operator
    period = int(alarm.period)
    n = int(alarm.evaluation_periods)
    m = int(alarm.datapoints_to_alarm or n)
    threshold = float(alarm.threshold)
    end = (now // period) * period  # the last complete period ends here
    start = end - n * period
    rows = cloudwatch_ext.series_buckets(
        cw,
        namespace=alarm.namespace,
        name=alarm.metric_name,
        dimensions=alarm.dimensions,
        unit=alarm.unit,
        start=start,
        end=end,
        period=period,
    )
    points: dict[float, tuple[float, float]] = {}
    for t, bucket in rows:
        value = bucket.stat(stat)
        if value is None:
            continue
        if (
            cloudwatch_ext.is_percentile(stat)
            and (alarm.evaluate_low_sample_count_percentile or "") == "ignore"
            and bucket.count() < 10 / max(1e-9, 1 - float(stat[1:]) / 100)
        ):
            return  # too few samples to judge: the state does not change
        points[t] = (value, bucket.count())
    periods = [start + i * period for i in range(n)]
    present = [(t, points[t][0]) for t in periods if t in points]
    breaching = [(t, v) for t, v in present if breaches(v, threshold)]
    missing = n - len(present)
    treat = alarm.treat_missing_data or "missing"

    if treat in ("breaching", "notBreaching"):
        filled = len(breaching) + (missing if treat == "breaching" else 0)
        state = "ALARM" if filled >= m else "OK"
    elif not present:
        if treat == "ignore":
            return
        state = "INSUFFICIENT_DATA"
    elif len(present) >= m:
        state = "ALARM" if len(breaching) >= m else "OK"
    else:
        state = "ALARM" if len(breaching) == len(present) else "OK"
    if state == alarm.state_value:
        return

    shown = breaching if state == "ALARM" else [p for p in present if p not in breaching]
    shown = shown or present
    values = ", ".join(f"{v} ({_short(t)})" for t, v in sorted(shown, reverse=True))
    if state == "INSUFFICIENT_DATA":
        reason = (
            f"Insufficient Data: {_plural(n, 'datapoint')} {'was' if n == 1 else 'were'} unknown."
        )
    elif not present:
        kind = "Breaching" if treat == "breaching" else "NonBreaching"
        reason = (
            f"Threshold Crossed: no datapoints were received for {_plural(n, 'period')} and "
            f"{_plural(missing, 'missing datapoint')} {'was' if missing == 1 else 'were'} "
            f"treated as [{kind}]."
        )
    else:
        count = len(breaching) if state == "ALARM" else len(present) - len(breaching)
        verb = "was" if count == 1 else "were"
        negation = "" if state == "ALARM" else "not "
        old = alarm.state_value
        reason = (
            f"Threshold Crossed: {count} out of the last {n} datapoints [{values}] {verb} "
            f"{negation}{phrase} the threshold ({threshold}) "
            f"(minimum {_plural(m if state == 'ALARM' else 1, 'datapoint')} for "
            f"{old} -> {state} transition)."
        )
    data: dict[str, Any] = {
        "version": "1.0",
        "queryDate": _stamp(now),
        "startDate": _stamp(start),
        ("extendedStatistic" if alarm.extended_statistic else "statistic"): stat,
        "period": period,
        "recentDatapoints": [points[t][0] for t in periods if t in points],
        "threshold": threshold,
        "evaluatedDatapoints": [
            {"timestamp": _stamp(t), "sampleCount": points[t][1], "value": points[t][0]}
            for t in reversed(periods)
            if t in points
        ],
    }
    if alarm.unit:
        data["unit"] = alarm.unit
    _transition(cw, region, alarm, state, reason, data, now)


def _transition(
    cw: Any, region: str, alarm: Any, state: str, reason: str, data: dict, now: float
) -> None:
    old = alarm.state_value
    try:
        cw.set_alarm_state(alarm.name, reason, json.dumps(data), state)
    except models.ResourceNotFound:
        return  # deleted meanwhile
    # The patched set_alarm_state has published the notification.
    logger.info("alarm %s (%s): %s -> %s", alarm.name, region, old, state)


def _notify(
    arn: str, alarm: Any, region: str, old: str, state: str, reason: str, now: float
) -> None:
    parts = arn.split(":")
    if len(parts) < 6 or parts[2] != "sns":
        return  # Auto Scaling, EC2 and Systems Manager actions: nothing here acts on them
    region_name = _REGION_NAMES.get(region, region)
    message = {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": ACCOUNT_ID,
        "AlarmConfigurationUpdatedTimestamp": _stamp(
            cloudwatch_ext.epoch(alarm.configuration_updated_timestamp)
        ),
        "NewStateValue": state,
        "NewStateReason": reason,
        "StateChangeTime": _stamp(now),
        "Region": region_name,
        "AlarmArn": alarm.alarm_arn,
        "OldStateValue": old,
        "OKActions": alarm.ok_actions,
        "AlarmActions": alarm.alarm_actions,
        "InsufficientDataActions": alarm.insufficient_data_actions,
        "Trigger": {
            "MetricName": alarm.metric_name,
            "Namespace": alarm.namespace,
            "StatisticType": "ExtendedStatistic" if alarm.extended_statistic else "Statistic",
            "Statistic": (alarm.extended_statistic or alarm.statistic or "").upper(),
            "Unit": alarm.unit,
            "Dimensions": [{"value": d.value, "name": d.name} for d in alarm.dimensions],
            "Period": int(alarm.period),
            "EvaluationPeriods": int(alarm.evaluation_periods),
            "DatapointsToAlarm": int(alarm.datapoints_to_alarm or alarm.evaluation_periods),
            "ComparisonOperator": alarm.comparison_operator,
            "Threshold": float(alarm.threshold),
            "TreatMissingData": alarm.treat_missing_data or "missing",
            "EvaluateLowSampleCountPercentile": alarm.evaluate_low_sample_count_percentile or "",
        },
    }
    try:
        backend("sns", parts[3]).publish(
            json.dumps(message), arn=arn, subject=f'{state}: "{alarm.name}" in {region_name}'[:100]
        )
    except Exception:  # noqa: BLE001 - an unknown or deleted topic: CloudWatch drops it too
        logger.warning("alarm %s: could not publish to %s", alarm.name, arn, exc_info=True)
