"""How an alarm's state follows its datapoints: CloudWatch's "M out of N" table for each
TreatMissingData, in process against a moto CloudWatch backend (no server, no patches: the
evaluator reads the values through the local AWS's store)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from moto.cloudwatch import models

from opsconsole.sandbox.localaws import alarm_evaluator, cloudwatch_ext

PERIOD = 60
NOW = 1_700_000_000 // PERIOD * PERIOD + 7  # 7 s into a minute
DIMS = [{"Name": "FunctionName", "Value": "fn"}]


def _backend_with(points: str) -> models.CloudWatchBackend:
    """``points`` oldest first, one character per period: X breaching (10), 0 not (0),
    - missing; the last one is the last complete period before NOW."""
    cw = models.CloudWatchBackend("us-east-1", "123456789012")
    end = NOW // PERIOD * PERIOD
    start = end - len(points) * PERIOD
    data = []
    for i, mark in enumerate(points):
        if mark == "-":
            continue
        when = datetime.fromtimestamp(start + i * PERIOD + 5, UTC)
        value = 10.0 if mark == "X" else 0.0
        data.append(models.MetricDatum("Test/Rules", "Errors", value, DIMS, when))
    cloudwatch_ext.store_of(cw).add(cw, data)
    return cw


def _alarm(cw, *, treat: str, state: str = "INSUFFICIENT_DATA", m: int = 3, n: int = 5):
    alarm = cw.put_metric_alarm(
        name="rules",
        namespace="Test/Rules",
        metric_name="Errors",
        comparison_operator="GreaterThanThreshold",
        evaluation_periods=n,
        datapoints_to_alarm=m,
        period=PERIOD,
        threshold=5.0,
        statistic="Sum",
        description="",
        dimensions=DIMS,
        alarm_actions=[],
        treat_missing_data=treat,
    )
    alarm.state_value = state
    return alarm


# CloudWatch's documented table for DatapointsToAlarm 3 of EvaluationPeriods 5.
TABLE = [
    ("0-X-X", {"missing": "OK", "ignore": "OK", "breaching": "ALARM", "notBreaching": "OK"}),
    ("----0", {"missing": "OK", "ignore": "OK", "breaching": "ALARM", "notBreaching": "OK"}),
    (
        "-----",
        {
            "missing": "INSUFFICIENT_DATA",
            "ignore": None,
            "breaching": "ALARM",
            "notBreaching": "OK",
        },
    ),
    (
        "0XX-X",
        {"missing": "ALARM", "ignore": "ALARM", "breaching": "ALARM", "notBreaching": "ALARM"},
    ),
    ("--X--", {"missing": "ALARM", "ignore": "ALARM", "breaching": "ALARM", "notBreaching": "OK"}),
]


@pytest.mark.parametrize(("points", "expected"), TABLE)
@pytest.mark.parametrize("treat", ["missing", "ignore", "breaching", "notBreaching"])
def test_m_out_of_n_with_missing_data(points, expected, treat):
    cw = _backend_with(points)
    # Start from a state no row leads to, so "keeps its state" shows.
    alarm = _alarm(cw, treat=treat, state="UNSET")
    alarm_evaluator.evaluate(cw, "us-east-1", alarm, NOW)
    want = expected[treat]
    assert alarm.state_value == ("UNSET" if want is None else want)


def test_reason_and_reason_data_say_what_was_evaluated():
    cw = _backend_with("0XX-X")
    alarm = _alarm(cw, treat="missing", state="OK")
    alarm_evaluator.evaluate(cw, "us-east-1", alarm, NOW)
    assert alarm.state_value == "ALARM"
    assert alarm.state_reason.startswith(
        "Threshold Crossed: 3 out of the last 5 datapoints [10.0 ("
    )
    assert "were greater than the threshold (5.0)" in alarm.state_reason
    assert "(minimum 3 datapoints for OK -> ALARM transition)" in alarm.state_reason
    data = json.loads(alarm.state_reason_data)
    assert data["statistic"] == "Sum"
    assert data["period"] == PERIOD
    assert data["threshold"] == 5.0
    assert data["recentDatapoints"] == [0.0, 10.0, 10.0, 10.0]
    assert [p["value"] for p in data["evaluatedDatapoints"]] == [10.0, 10.0, 10.0, 0.0]
    # The previous state is in the history, as SetAlarmState records it.
    assert alarm.history[-1][3] == "OK"


def test_only_a_change_of_state_is_written():
    cw = _backend_with("XXXXX")
    alarm = _alarm(cw, treat="missing", state="OK")
    alarm_evaluator.evaluate(cw, "us-east-1", alarm, NOW)
    first = (alarm.state_value, alarm.state_updated_timestamp, len(alarm.history))
    alarm_evaluator.evaluate(cw, "us-east-1", alarm, NOW)
    assert (alarm.state_value, alarm.state_updated_timestamp, len(alarm.history)) == first


def test_the_current_period_waits_until_it_is_complete():
    cw = _backend_with("")
    when = datetime.fromtimestamp(NOW - 2, UTC)  # inside the period that is still running
    cloudwatch_ext.store_of(cw).add(
        cw, [models.MetricDatum("Test/Rules", "Errors", 10.0, DIMS, when)]
    )
    alarm = _alarm(cw, treat="missing", m=1, n=1)
    alarm_evaluator.evaluate(cw, "us-east-1", alarm, NOW)
    assert alarm.state_value == "INSUFFICIENT_DATA"
    alarm_evaluator.evaluate(cw, "us-east-1", alarm, NOW + PERIOD)
    assert alarm.state_value == "ALARM"


def test_percentile_alarm_and_low_sample_count():
    cw = _backend_with("")
    end = NOW // PERIOD * PERIOD
    when = datetime.fromtimestamp(end - PERIOD + 1, UTC)
    values = [float(v) for v in range(1, 101)]
    cloudwatch_ext.store_of(cw).add(
        cw, [models.MetricDatum("Test/Rules", "Errors", v, DIMS, when) for v in values]
    )
    alarm = _alarm(cw, treat="missing", m=1, n=1)
    alarm.statistic, alarm.extended_statistic = None, "p95"
    alarm.threshold = 94.5
    alarm_evaluator.evaluate(cw, "us-east-1", alarm, NOW)
    assert alarm.state_value == "ALARM"  # p95 of 1..100 is 95
    assert json.loads(alarm.state_reason_data)["extendedStatistic"] == "p95"

    # p99.9 needs 10 / (1 - 0.999) = 10,000 samples to count when told to ignore fewer.
    alarm.extended_statistic, alarm.evaluate_low_sample_count_percentile = "p99.9", "ignore"
    alarm.state_value = "OK"
    alarm_evaluator.evaluate(cw, "us-east-1", alarm, NOW)
    assert alarm.state_value == "OK"
    alarm.evaluate_low_sample_count_percentile = "evaluate"
    alarm_evaluator.evaluate(cw, "us-east-1", alarm, NOW)
    assert alarm.state_value == "ALARM"


def test_metric_math_alarms_are_not_made_up():
    cw = _backend_with("XXXXX")
    alarm = _alarm(cw, treat="missing", state="OK")
    alarm.metric_data_queries = [object()]
    alarm_evaluator.evaluate(cw, "us-east-1", alarm, NOW)
    assert alarm.state_value == "INSUFFICIENT_DATA"
    assert "does not evaluate metric math" in alarm.state_reason
