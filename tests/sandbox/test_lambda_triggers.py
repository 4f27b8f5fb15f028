"""What moto itself invokes (SNS subscriptions, SQS event source mappings) runs the code."""

from __future__ import annotations

import json

import pytest

from tests.sandbox.test_lambda_common import Aws, unique, wait_for

pytestmark = pytest.mark.integration

PRINT = """\
import json

def handler(event, context):
    for record in event.get("Records", []):
        body = record.get("body") or record.get("Sns", {}).get("Message")
        print("got", body)
    return {"batchItemFailures": []}
"""


@pytest.fixture(scope="module")
def aws(local_aws_server) -> Aws:
    return Aws(local_aws_server)


def test_sns_publish_invokes_a_subscribed_function(aws):
    name = aws.function({"app.py": PRINT})
    arn = aws.lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    sns = aws.client("sns")
    topic = sns.create_topic(Name=unique("topic"))["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=arn)
    sns.publish(TopicArn=topic, Message="hello from sns")
    assert wait_for(lambda: "got hello from sns" in aws.log_messages(name))


def test_sqs_event_source_mapping_invokes_the_function(aws):
    name = aws.function({"app.py": PRINT})
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=unique("queue"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    aws.lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=name)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"order": 1}))
    assert wait_for(lambda: 'got {"order": 1}' in aws.log_messages(name))
