"""UpdateSecretVersionStage moving ``AWSCURRENT``, which moto records but does not serve.

On AWS, GetSecretValue without a version answers the version labelled ``AWSCURRENT``; a
rotation stages the new value as ``AWSPENDING`` and then moves ``AWSCURRENT`` onto it.
moto moves the label but keeps answering the old value (its ``default_version_id``), so
a staged rotation would look done while every reader kept the old password. Patched: a
move of ``AWSCURRENT`` also makes the target version the one served. The in-process unit
tests apply the same patch.
"""

from __future__ import annotations

from opsconsole.sandbox.localaws.config import LocalAwsConfig


def patch_moto() -> None:
    from moto.secretsmanager.models import SecretsManagerBackend

    if getattr(SecretsManagerBackend.update_secret_version_stage, "_serves_current", False):
        return
    original = SecretsManagerBackend.update_secret_version_stage

    def update_secret_version_stage(
        self, secret_id, version_stage, remove_from_version_id, move_to_version_id
    ):
        answer = original(
            self, secret_id, version_stage, remove_from_version_id, move_to_version_id
        )
        if version_stage == "AWSCURRENT" and move_to_version_id:
            self.secrets[secret_id].set_default_version_id(move_to_version_id)
        return answer

    update_secret_version_stage._serves_current = True  # type: ignore[attr-defined]
    SecretsManagerBackend.update_secret_version_stage = update_secret_version_stage  # type: ignore[method-assign]


def install(config: LocalAwsConfig) -> None:
    patch_moto()


def route(request) -> None:
    return None
