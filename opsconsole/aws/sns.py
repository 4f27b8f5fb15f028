"""SNS topics and subscriptions (the alarm topics)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from opsconsole.aws.clients import call, client, tag_dict, tag_list
from opsconsole.aws.errors import AwsNotFound

# What SNS lists instead of an ARN while an endpoint has not confirmed.
PENDING = "PendingConfirmation"


def create_topic(*, name: str, region: str | None = None) -> str:
    """The topic's ARN; CreateTopic returns the existing topic's when the name is taken.

    Tags are set apart (``tag_topic``): CreateTopic refuses an existing topic whose tags
    differ from the ones it is given, which would make a retag impossible."""
    return call(client("sns", region).create_topic, Name=name)["TopicArn"]


def get_topic_attributes(*, arn: str, region: str | None = None) -> dict[str, str] | None:
    """The topic's attributes, or None when there is no such topic."""
    try:
        return call(client("sns", region).get_topic_attributes, TopicArn=arn)["Attributes"]
    except AwsNotFound:
        return None


def topic_policy(attributes: dict[str, str]) -> dict[str, Any]:
    try:
        return json.loads(attributes.get("Policy") or "{}")
    except ValueError:
        return {}


def set_topic_policy(*, arn: str, policy: dict[str, Any], region: str | None = None) -> None:
    call(
        client("sns", region).set_topic_attributes,
        TopicArn=arn,
        AttributeName="Policy",
        AttributeValue=json.dumps(policy, sort_keys=True),
    )


def topic_tags(*, arn: str, region: str | None = None) -> dict[str, str]:
    return tag_dict(call(client("sns", region).list_tags_for_resource, ResourceArn=arn)["Tags"])


def tag_topic(*, arn: str, tags: dict[str, str], region: str | None = None) -> None:
    call(client("sns", region).tag_resource, ResourceArn=arn, Tags=tag_list(tags))


def delete_topic(*, arn: str, region: str | None = None) -> None:
    """Deletes the topic and its subscriptions; a topic already gone is not an error."""
    with contextlib.suppress(AwsNotFound):
        call(client("sns", region).delete_topic, TopicArn=arn)


def list_subscriptions(*, arn: str, region: str | None = None) -> list[dict[str, str]]:
    """The topic's subscriptions: Protocol, Endpoint, SubscriptionArn (``PENDING`` for an
    unconfirmed one on AWS)."""
    out: list[dict[str, str]] = []
    kwargs: dict[str, Any] = {"TopicArn": arn}
    while True:
        resp = call(client("sns", region).list_subscriptions_by_topic, **kwargs)
        out.extend(resp.get("Subscriptions", []))
        token = resp.get("NextToken")
        if not token:
            return out
        kwargs["NextToken"] = token


def subscribe(*, arn: str, protocol: str, endpoint: str, region: str | None = None) -> str:
    """The subscription's ARN, even while it waits for confirmation (ReturnSubscriptionArn),
    so that a subscription removed before it was confirmed can still be unsubscribed.
    Subscribing again to the same endpoint returns the same subscription."""
    resp = call(
        client("sns", region).subscribe,
        TopicArn=arn,
        Protocol=protocol,
        Endpoint=endpoint,
        ReturnSubscriptionArn=True,
    )
    return resp["SubscriptionArn"]


def subscription_attributes(*, arn: str, region: str | None = None) -> dict[str, str] | None:
    try:
        return call(client("sns", region).get_subscription_attributes, SubscriptionArn=arn)[
            "Attributes"
        ]
    except AwsNotFound:
        return None


def is_pending(attributes: dict[str, Any]) -> bool:
    return str(attributes.get("PendingConfirmation", "false")).lower() == "true"


def unsubscribe(*, arn: str, region: str | None = None) -> None:
    with contextlib.suppress(AwsNotFound):
        call(client("sns", region).unsubscribe, SubscriptionArn=arn)
