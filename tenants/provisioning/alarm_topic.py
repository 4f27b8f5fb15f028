"""Step 8b: the SNS topic a tenant's alarms notify, and who it notifies.

``Tenant.alarm_topic`` chooses it: none (alarms only show in the console), the tenant's
own topic (``opsconsole-<slug>-alarms``, tagged like the tenant's other resources, deleted
at offboarding) or the fleet's (``opsconsole-fleet-alarms``). CloudWatch alarm actions
must name a topic in the alarm's own region, so the fleet's topic exists, under that one
name, in every region that has a tenant using it (and in the console's own region, so
its subscriptions always have somewhere to be confirmed).

Subscriptions converge on the ``AlarmSubscription`` rows (``tenant`` empty: the fleet's):
new ones are subscribed, ones no row asks for are unsubscribed, and each row records what
SNS says of it: its ARN once confirmed, "pending confirmation" until the address confirms
(an email's link, an HTTPS endpoint's SubscribeURL). An unconfirmed subscription cannot
receive anything; one removed before it was confirmed is unsubscribed once it shows an
ARN, and AWS deletes it after three days otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from opsconsole.aws import sns
from tenants import naming, resources
from tenants.models import AlarmSubscription, AlarmTopicChoice, Tenant, TenantStatus
from tenants.provisioning.common import Drift, account_id, tags_for, tenant_of

FLEET_TOPIC = f"{naming.PREFIX}-fleet-alarms"
PENDING_TEXT = "pending confirmation"


def tenant_topic_name(slug: str) -> str:
    return f"{naming.resource_prefix(slug)}-alarms"


@dataclass(frozen=True)
class Topic:
    name: str
    region: str
    fleet: bool
    # Alarms allowed to publish: the tenant's own, or every alarm of the console's.
    alarm_prefix: str

    @property
    def arn(self) -> str:
        return f"arn:aws:sns:{self.region}:{account_id(self.region)}:{self.name}"


def tenant_topic(tenant: Tenant) -> Topic:
    return Topic(
        tenant_topic_name(tenant.slug),
        tenant.region,
        fleet=False,
        alarm_prefix=f"{naming.resource_prefix(tenant.slug)}-",
    )


def fleet_topic(region: str) -> Topic:
    return Topic(FLEET_TOPIC, region, fleet=True, alarm_prefix=f"{naming.PREFIX}-")


def topic_for(tenant: Tenant) -> Topic | None:
    if tenant.alarm_topic == AlarmTopicChoice.TENANT:
        return tenant_topic(tenant)
    if tenant.alarm_topic == AlarmTopicChoice.FLEET:
        return fleet_topic(tenant.region)
    return None


def topic_arn_for(tenant: Tenant) -> str | None:
    topic = topic_for(tenant)
    return topic.arn if topic else None


def subscriptions_of(tenant: Tenant | None):
    """The rows of the tenant's own topic, or the fleet's (``None``)."""
    if tenant is None:
        return AlarmSubscription.objects.filter(tenant__isnull=True)
    if tenant.pk is None:
        return AlarmSubscription.objects.none()
    return AlarmSubscription.objects.filter(tenant=tenant)


def destination_text(tenant: Tenant) -> str:
    """Where the tenant's alarms go, for plans: "SNS topic X (2 subscribers)"."""
    topic = topic_for(tenant)
    if topic is None:
        return "nobody (the console shows it)"
    n = subscriptions_of(None if topic.fleet else tenant).count()
    return f"SNS topic {topic.name} ({n} subscriber{'' if n == 1 else 's'})"


def fleet_regions() -> list[str]:
    """Where the fleet's topic lives: the console's region and every region of a live
    tenant whose alarms go to it."""
    regions = set(
        Tenant.objects.filter(alarm_topic=AlarmTopicChoice.FLEET)
        .exclude(status__in=[TenantStatus.OFFBOARDED, TenantStatus.OFFBOARDING])
        .values_list("region", flat=True)
    )
    return sorted(regions | {settings.AWS_REGION})


def policy(topic: Topic) -> dict[str, Any]:
    """The account manages the topic; CloudWatch may publish to it, for the account's own
    alarms (their ARNs, within the topic's alarm prefix) only."""
    account = account_id(topic.region)
    return {
        "Version": "2012-10-17",
        "Id": f"{topic.name}-policy",
        "Statement": [
            {
                "Sid": "AccountManages",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": [
                    "SNS:GetTopicAttributes",
                    "SNS:SetTopicAttributes",
                    "SNS:AddPermission",
                    "SNS:RemovePermission",
                    "SNS:DeleteTopic",
                    "SNS:Subscribe",
                    "SNS:ListSubscriptionsByTopic",
                    "SNS:Publish",
                ],
                "Resource": topic.arn,
            },
            {
                "Sid": "CloudWatchAlarmsPublish",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": "sns:Publish",
                "Resource": topic.arn,
                "Condition": {
                    "ArnLike": {
                        "aws:SourceArn": (
                            f"arn:aws:cloudwatch:{topic.region}:{account}:alarm:"
                            f"{topic.alarm_prefix}*"
                        )
                    },
                    "StringEquals": {"aws:SourceAccount": account},
                },
            },
        ],
    }


def _topic_tags(topic: Topic, tenant: Tenant | None) -> dict[str, str]:
    if tenant is not None and not topic.fleet:
        return tags_for(tenant)
    return {"ManagedBy": naming.PREFIX}


def ensure_topic(topic: Topic, tenant: Tenant | None) -> dict[str, Any]:
    """Create the topic if needed, and set its policy and tags where they differ."""
    attributes = sns.get_topic_attributes(arn=topic.arn, region=topic.region)
    created = attributes is None
    if created:
        sns.create_topic(name=topic.name, region=topic.region)
    wanted = policy(topic)
    if created or sns.topic_policy(attributes or {}) != wanted:
        sns.set_topic_policy(arn=topic.arn, policy=wanted, region=topic.region)
    tags = _topic_tags(topic, tenant)
    have = {} if created else sns.topic_tags(arn=topic.arn, region=topic.region)
    if any(have.get(k) != v for k, v in tags.items()):
        sns.tag_topic(arn=topic.arn, tags=tags, region=topic.region)
    return {"created": created}


@dataclass
class Converged:
    subscribed: list[str]
    unsubscribed: list[str]
    # row id -> its ARN, or PENDING_TEXT
    states: dict[int, str]


def converge(topic: Topic, rows: list[AlarmSubscription]) -> Converged:
    """Subscribe each row's endpoint, unsubscribe what no row asks for; what SNS says of
    each row (not written here: the fleet's rows span regions)."""
    listed = sns.list_subscriptions(arn=topic.arn, region=topic.region)
    by_key: dict[tuple[str, str], dict] = {}
    for item in listed:
        by_key.setdefault((item["Protocol"], item["Endpoint"]), item)
    wanted = {(r.protocol, r.endpoint) for r in rows}
    out = Converged(subscribed=[], unsubscribed=[], states={})
    for row in rows:
        item = by_key.get((row.protocol, row.endpoint))
        if item is None:
            arn = sns.subscribe(
                arn=topic.arn, protocol=row.protocol, endpoint=row.endpoint, region=topic.region
            )
            out.subscribed.append(f"{row.protocol} {row.endpoint}")
        else:
            arn = item["SubscriptionArn"]
        out.states[row.pk] = _state(arn, topic.region)
    for key, item in by_key.items():
        arn = item["SubscriptionArn"]
        if key not in wanted and arn.startswith("arn:"):
            sns.unsubscribe(arn=arn, region=topic.region)
            out.unsubscribed.append(f"{key[0]} {key[1]}")
    return out


def _state(arn: str, region: str) -> str:
    if not arn.startswith("arn:"):
        return PENDING_TEXT  # SNS lists "PendingConfirmation" (or "pending confirmation")
    attributes = sns.subscription_attributes(arn=arn, region=region)
    if attributes is None or sns.is_pending(attributes):
        return PENDING_TEXT
    return arn


def _save_states(states: dict[int, str]) -> None:
    for pk, value in states.items():
        AlarmSubscription.objects.filter(pk=pk).exclude(subscription_arn=value).update(
            subscription_arn=value
        )


def _forget_states(tenant: Tenant) -> None:
    """The tenant's own rows once its topic is gone: not applied anywhere."""
    AlarmSubscription.objects.filter(tenant=tenant).exclude(subscription_arn="").update(
        subscription_arn="", region_states={}
    )


def _delete_tenant_topic(tenant: Tenant) -> bool:
    topic = tenant_topic(tenant)
    exists = sns.get_topic_attributes(arn=topic.arn, region=topic.region) is not None
    if exists:
        sns.delete_topic(arn=topic.arn, region=topic.region)
    resources.mark(tenant, kind="alarm_topic", name=topic.name, status="deleted")
    _forget_states(tenant)
    return exists


def apply_fleet_topic(region: str) -> dict[str, Any]:
    """The fleet's topic in ``region``, converged on the fleet's rows."""
    topic = fleet_topic(region)
    rows = list(subscriptions_of(None))
    ensured = ensure_topic(topic, None)
    result = converge(topic, rows)
    return {"topic": topic.arn, **ensured, "result": result}


def step_alarm_topic(job, step) -> dict:
    tenant = tenant_of(job)
    topic = topic_for(tenant)
    output: dict[str, Any] = {"choice": tenant.alarm_topic}
    if topic is None or topic.fleet:
        # The tenant's own topic is not used (or no longer): it goes, with its subscriptions;
        # the rows stay, so choosing it again subscribes them again.
        output["deleted_own_topic"] = _delete_tenant_topic(tenant)
    if topic is None:
        return output
    if topic.fleet:
        applied = apply_fleet_topic(topic.region)
        _save_fleet_states(applied["result"].states, complete=fleet_regions() == [topic.region])
        _save_region_states(topic.region, applied["result"].states)
        result = applied["result"]
        output.update(topic=applied["topic"], created=applied["created"])
    else:
        rows = list(subscriptions_of(tenant))
        output.update(ensure_topic(topic, tenant), topic=topic.arn)
        result = converge(topic, rows)
        _save_states(result.states)
        pending = sum(1 for v in result.states.values() if v == PENDING_TEXT)
        resources.record(
            tenant,
            kind="alarm_topic",
            name=topic.name,
            identifier=topic.name,
            arn=topic.arn,
            details={"subscribers": len(rows), "pending": pending},
        )
    output.update(subscribed=result.subscribed, unsubscribed=result.unsubscribed)
    return output


def _save_fleet_states(states: dict[int, str], *, complete: bool) -> None:
    """One region's view of the fleet's rows. Unless it is the only region, it may only
    say "pending" (or fill in a row never applied): "confirmed" needs every region."""
    if complete:
        _save_states(states)
        return
    current = dict(subscriptions_of(None).values_list("pk", "subscription_arn"))
    _save_states({pk: v for pk, v in states.items() if v == PENDING_TEXT or not current.get(pk)})


def step_fleet_topic(job, step) -> dict:
    """Every region's fleet topic converged; a row is confirmed once every region's
    subscription is (an email address confirms each region's topic once)."""
    states: dict[int, str] = {}
    by_region: dict[int, dict[str, str]] = {}
    out: dict[str, Any] = {}
    for region in fleet_regions():
        applied = apply_fleet_topic(region)
        result = applied["result"]
        for pk, value in result.states.items():
            before = states.get(pk)
            states[pk] = PENDING_TEXT if PENDING_TEXT in (before, value) else (before or value)
            by_region.setdefault(pk, {})[region] = value
        out[region] = {"subscribed": result.subscribed, "unsubscribed": result.unsubscribed}
    _save_states(states)
    for pk, regions in by_region.items():
        AlarmSubscription.objects.filter(pk=pk).exclude(region_states=regions).update(
            region_states=regions
        )
    return {"regions": out}


def _save_region_states(region: str, states: dict[int, str]) -> None:
    """One region's answer about the fleet's rows, beside the other regions' (a tenant's
    job converges only its own region's topic)."""
    for row in AlarmSubscription.objects.filter(pk__in=list(states)):
        regions = {**(row.region_states or {}), region: states[row.pk]}
        if regions != row.region_states:
            AlarmSubscription.objects.filter(pk=row.pk).update(region_states=regions)


def step_delete_alarm_topic(job, step) -> dict:
    """Offboarding: the tenant's own topic only (the fleet's serves other tenants)."""
    tenant = tenant_of(job)
    return {"deleted": _delete_tenant_topic(tenant)}


def topic_drift(tenant: Tenant) -> list[Drift]:
    topic = topic_for(tenant)
    own = tenant_topic(tenant)
    drifts = []
    unused = topic is None or topic.fleet
    if unused and sns.get_topic_attributes(arn=own.arn, region=own.region) is not None:
        drifts.append(Drift("alarm_topic", own.name, "exists", "absent (not used)", "present"))
    if topic is None:
        return drifts
    attributes = sns.get_topic_attributes(arn=topic.arn, region=topic.region)
    if attributes is None:
        return [*drifts, Drift("alarm_topic", topic.name, "exists", "present", "missing")]
    if sns.topic_policy(attributes) != policy(topic):
        drifts.append(
            Drift("alarm_topic", topic.name, "policy", "CloudWatch may publish", "differs")
        )
    if not topic.fleet:
        have = sns.topic_tags(arn=topic.arn, region=topic.region)
        wanted_tags = _topic_tags(topic, tenant)
        if any(have.get(k) != v for k, v in wanted_tags.items()):
            drifts.append(Drift("alarm_topic", topic.name, "tags", wanted_tags, have))
    rows = subscriptions_of(None if topic.fleet else tenant)
    wanted = {(r.protocol, r.endpoint) for r in rows}
    listed = sns.list_subscriptions(arn=topic.arn, region=topic.region)
    have_keys = {(i["Protocol"], i["Endpoint"]) for i in listed}
    for protocol, endpoint in sorted(wanted - have_keys):
        drifts.append(
            Drift("alarm_topic", topic.name, f"subscription {protocol}", endpoint, "missing")
        )
    for item in listed:
        key = (item["Protocol"], item["Endpoint"])
        if key not in wanted and item["SubscriptionArn"].startswith("arn:"):
            drifts.append(
                Drift("alarm_topic", topic.name, f"subscription {key[0]}", "absent", key[1])
            )
    return drifts
