"""Lambda version numbers are never used twice, as on AWS.

moto numbers a new version ``len(versions) + 1``: once a version is deleted, the next
publish takes the number of one that still exists (delete 1 of [1, 2], publish: a second
"2"). On AWS the numbers only grow. A roll back that finds its old version deleted
redeploys and publishes again, and would get a number that already names another
version here. Patched for the local AWS and the in-process unit tests alike.
"""

from __future__ import annotations

import copy

from opsconsole.sandbox.localaws.config import LocalAwsConfig


def patch_moto() -> None:
    from moto.awslambda.models import LambdaStorage

    if getattr(LambdaStorage.publish_version, "_never_reused", False):
        return

    def publish_version(self, name_or_arn: str, description: str = ""):
        function = self.get_function_by_name_or_arn_forbid_qualifier(name_or_arn)
        entry = self._functions.get(function.function_name)
        if not entry or not entry["latest"]:
            return None
        versions = entry["versions"]
        if versions and not function.code_or_config_updated:
            return versions[-1]  # nothing changed since the last one: that one again
        function.code_or_config_updated = False
        # The highest number ever given, deleted versions included.
        highest = max([int(v.version) for v in versions] + [entry.get("highest_version", 0)])
        entry["highest_version"] = highest + 1
        published = copy.copy(entry["latest"])
        published.set_version(highest + 1)
        if description:
            published.description = description
        versions.append(published)
        self._arns[published.function_arn] = published
        return published

    publish_version._never_reused = True  # type: ignore[attr-defined]
    LambdaStorage.publish_version = publish_version  # type: ignore[method-assign]


def install(config: LocalAwsConfig) -> None:
    patch_moto()


def route(request) -> None:
    return None
