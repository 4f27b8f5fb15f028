"""Helpers for the Lambda tests: boto3 clients on the local AWS, in-memory zips, functions.

No tests here; the other ``test_lambda_*`` modules import these helpers.
"""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from datetime import UTC, datetime, timedelta

import boto3
from botocore.config import Config

REGION = "us-east-1"


def make_client(endpoint: str, service: str, **config):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
        config=Config(
            retries={"total_max_attempts": 1},
            read_timeout=60,
            max_pool_connections=32,
            **config,
        ),
    )


def zip_of(files: dict[str, str | bytes], modes: dict[str, int] | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = (0o100000 | (modes or {}).get(name, 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return out.getvalue()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Aws:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.lam = make_client(endpoint, "lambda")
        self.logs = make_client(endpoint, "logs")
        self.cloudwatch = make_client(endpoint, "cloudwatch")
        iam = make_client(endpoint, "iam")
        name = unique("lambda-test-role")
        self.role = iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]

    def client(self, service: str):
        return make_client(self.endpoint, service)

    def function(
        self,
        files: dict[str, str | bytes],
        *,
        runtime: str = "python3.11",
        handler: str = "app.handler",
        modes: dict[str, int] | None = None,
        **extra,
    ) -> str:
        name = unique("fn")
        self.lam.create_function(
            FunctionName=name,
            Runtime=runtime,
            Role=self.role,
            Handler=handler,
            Code={"ZipFile": zip_of(files, modes)},
            **extra,
        )
        return name

    def invoke(self, name: str, event=None, **kwargs) -> tuple[dict, object]:
        response = self.lam.invoke(
            FunctionName=name, Payload=json.dumps(event or {}).encode(), **kwargs
        )
        body = response["Payload"].read()
        try:
            return response, json.loads(body)
        except ValueError:
            return response, body

    def log_messages(self, name: str) -> list[str]:
        try:
            events = self.logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
        except self.logs.exceptions.ResourceNotFoundException:
            return []  # no invoke yet: Lambda creates the group on the first one
        return [event["message"] for event in events]

    def metric_sum(self, metric: str, dimensions: dict[str, str]) -> float | None:
        now = datetime.now(UTC)
        response = self.cloudwatch.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "m",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/Lambda",
                            "MetricName": metric,
                            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                        },
                        "Period": 3600,
                        "Stat": "Sum",
                    },
                }
            ],
            StartTime=now - timedelta(hours=1),
            EndTime=now + timedelta(minutes=5),
        )
        values = response["MetricDataResults"][0]["Values"]
        return sum(values) if values else None


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
