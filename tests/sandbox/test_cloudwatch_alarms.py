"""Metric alarms evaluated by a real local AWS process (alarms evaluated every second here,
every minute in `make run`): a pushed metric takes its alarm to ALARM and back to OK, SNS
actions are published, and the console's own alarm definitions evaluate."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime

import boto3
import pytest

from opsconsole.sandbox import services

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def alarm_server(tmp_path_factory):
    """A local AWS of this module's own, evaluating alarms every second."""
    port = services.free_port()
    log = tmp_path_factory.mktemp("localaws-alarms") / "localaws.log"
    previous = os.environ.get("LOCALAWS_ALARM_INTERVAL_S")
    os.environ["LOCALAWS_ALARM_INTERVAL_S"] = "1"
    try:
        proc = services.start_local_aws(port=port, log_path=log)
    finally:
        if previous is None:
            os.environ.pop("LOCALAWS_ALARM_INTERVAL_S", None)
        else:
            os.environ["LOCALAWS_ALARM_INTERVAL_S"] = previous
    yield f"http://127.0.0.1:{port}"
    services.stop_process(proc)


def _client(service: str, endpoint: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
    )


def _wait_for(cw, name: str, state: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        alarm = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
        if alarm["StateValue"] == state:
            return alarm
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} still {alarm['StateValue']}: {alarm['StateReason']}")
        time.sleep(0.25)


def _messages(sqs, queue_url: str) -> list[dict]:
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return out
        for message in got:
            out.append(json.loads(json.loads(message["Body"])["Message"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.mark.long  # a long scenario: `make faults` runs it, `make test` does not
def test_pushed_errors_raise_the_alarm_and_it_clears(alarm_server):
    cw, sns, sqs = (_client(s, alarm_server) for s in ("cloudwatch", "sns", "sqs"))
    suffix = uuid.uuid4().hex[:8]
    topic = sns.create_topic(Name=f"alarms-{suffix}")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"alarms-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    name = f"errors-{suffix}"
    dims = [{"Name": "FunctionName", "Value": f"fn-{suffix}"}]
    cw.put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Dimensions=dims,
        Statistic="Sum",
        Period=10,
        EvaluationPeriods=1,
        Threshold=5.0,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
        AlarmActions=[topic],
        OKActions=[topic],
    )
    # A new alarm has not been evaluated yet, as in CloudWatch.
    assert cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"] in (
        "INSUFFICIENT_DATA",
        "OK",
    )
    _wait_for(cw, name, "OK", timeout=5)

    cw.put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {"MetricName": "Errors", "Dimensions": dims, "Value": 4.0, "Unit": "Count"},
            {"MetricName": "Errors", "Dimensions": dims, "Value": 6.0, "Unit": "Count"},
        ],
    )
    alarmed = _wait_for(cw, name, "ALARM")
    assert "1 out of the last 1 datapoints [10.0 (" in alarmed["StateReason"]
    assert "was greater than the threshold (5.0)" in alarmed["StateReason"]
    data = json.loads(alarmed["StateReasonData"])
    assert data["recentDatapoints"] == [10.0]
    assert data["evaluatedDatapoints"][0]["sampleCount"] == 2.0

    cleared = _wait_for(cw, name, "OK")
    assert "treated as [NonBreaching]" in cleared["StateReason"]

    time.sleep(0.5)
    notes = _messages(sqs, queue_url)
    transitions = [(n["OldStateValue"], n["NewStateValue"]) for n in notes]
    assert transitions[-2:] == [("OK", "ALARM"), ("ALARM", "OK")]
    alarm_note = notes[-2]
    assert alarm_note["AlarmName"] == name
    assert alarm_note["Trigger"]["MetricName"] == "Errors"
    assert alarm_note["Trigger"]["Dimensions"] == [
        {"value": f"fn-{suffix}", "name": "FunctionName"}
    ]


@pytest.mark.long  # a long scenario: `make faults` runs it, `make test` does not
def test_percentile_alarm_on_pushed_latencies(alarm_server):
    cw = _client("cloudwatch", alarm_server)
    suffix = uuid.uuid4().hex[:8]
    name = f"latency-{suffix}"
    dims = [{"Name": "ApiId", "Value": suffix}, {"Name": "Stage", "Value": "$default"}]
    cw.put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/ApiGateway",
        MetricName="Latency",
        Dimensions=dims,
        ExtendedStatistic="p90",
        Period=10,
        EvaluationPeriods=1,
        Threshold=50.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    # TreatMissingData missing: no data at all is INSUFFICIENT_DATA, not OK.
    time.sleep(2.5)
    assert cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"] == (
        "INSUFFICIENT_DATA"
    )
    cw.put_metric_data(
        Namespace="AWS/ApiGateway",
        MetricData=[
            {
                "MetricName": "Latency",
                "Dimensions": dims,
                "Values": [float(v) for v in range(1, 101)],
                "Unit": "Milliseconds",
            }
        ],
    )
    alarmed = _wait_for(cw, name, "ALARM")
    assert json.loads(alarmed["StateReasonData"])["recentDatapoints"] == [90.0]


def test_the_consoles_alarm_definitions_evaluate(alarm_server):
    """As tenants/provisioning/alarms.py writes them: 5 one-minute periods, missing data
    not breaching, no actions. With no traffic they settle at OK; updating one keeps its
    state; a metric-math alarm says it is not evaluated instead of pretending."""
    cw = _client("cloudwatch", alarm_server)
    suffix = uuid.uuid4().hex[:8]
    function = f"opsconsole-{suffix}"
    spec = {
        "AlarmName": f"opsconsole-{suffix}-errors",
        "Namespace": "AWS/Lambda",
        "MetricName": "Errors",
        "Statistic": "Sum",
        "Threshold": 5.0,
        "ComparisonOperator": "GreaterThanThreshold",
        "Dimensions": [
            {"Name": "FunctionName", "Value": function},
            {"Name": "Resource", "Value": f"{function}:live"},
        ],
        "Period": 60,
        "EvaluationPeriods": 5,
        "TreatMissingData": "notBreaching",
        "ActionsEnabled": False,
        "AlarmDescription": f"opsconsole tenant {suffix}",
    }
    cw.put_metric_alarm(**spec)
    settled = _wait_for(cw, spec["AlarmName"], "OK", timeout=5)
    cw.put_metric_alarm(**{**spec, "Threshold": 6.0})
    again = cw.describe_alarms(AlarmNames=[spec["AlarmName"]])["MetricAlarms"][0]
    assert (again["StateValue"], again["StateUpdatedTimestamp"]) == (
        "OK",
        settled["StateUpdatedTimestamp"],
    )
    assert again["Threshold"] == 6.0

    math_name = f"opsconsole-{suffix}-error-rate"
    cw.put_metric_alarm(
        AlarmName=math_name,
        EvaluationPeriods=1,
        Threshold=0.1,
        ComparisonOperator="GreaterThanThreshold",
        Metrics=[
            {
                "Id": "errors",
                "MetricStat": {
                    "Metric": {"Namespace": "AWS/Lambda", "MetricName": "Errors"},
                    "Period": 60,
                    "Stat": "Sum",
                },
                "ReturnData": False,
            },
            {"Id": "rate", "Expression": "errors / 100", "ReturnData": True},
        ],
    )
    time.sleep(2.5)
    math_alarm = cw.describe_alarms(AlarmNames=[math_name])["MetricAlarms"][0]
    assert math_alarm["StateValue"] == "INSUFFICIENT_DATA"
    assert "does not evaluate metric math" in math_alarm["StateReason"]
    assert datetime.now(UTC) > math_alarm["StateUpdatedTimestamp"]
