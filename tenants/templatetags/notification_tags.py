"""The tenant page's "Who is notified" section reads its data here, so the tenant view
(shared by many features) needs no context of its own for it."""

from django import template

from tenants.models import AlarmSubscription, AlarmTopicChoice
from tenants.notifications import subscription_status
from tenants.provisioning.alarm_topic import FLEET_TOPIC, subscriptions_of, tenant_topic_name

register = template.Library()


@register.simple_tag
def tenant_notifications(tenant) -> dict:
    own = [(r, subscription_status(r)) for r in subscriptions_of(tenant)]
    return {
        "subscriptions": own,
        "own_topic": tenant_topic_name(tenant.slug),
        "fleet_topic": FLEET_TOPIC,
        "fleet_count": subscriptions_of(None).count(),
        "uses_own": tenant.alarm_topic == AlarmTopicChoice.TENANT,
        "choices": AlarmTopicChoice.choices,
        "protocols": AlarmSubscription.Protocol.choices,
    }
