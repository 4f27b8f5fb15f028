from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "opsconsole.core"
    label = "core"
