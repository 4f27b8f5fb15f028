from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "opsconsole.webhooks"
    label = "webhooks"
