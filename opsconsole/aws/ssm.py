"""Systems Manager Parameter Store: reading an app's parameters (SecureString values are
secrets: they pass through here to the function's configuration and nowhere else)."""

from __future__ import annotations

from collections.abc import Iterable

from opsconsole.aws.clients import call, client

# GetParameters takes at most 10 names a call.
_BATCH = 10


def get_parameters(
    names: Iterable[str], region: str | None = None, decrypt: bool = True
) -> dict[str, str]:
    """NAME -> value of the parameters that exist; a name not in the answer does not exist
    (SSM lists it as invalid rather than failing the call)."""
    wanted = list(dict.fromkeys(names))
    ssm = client("ssm", region)
    values: dict[str, str] = {}
    for start in range(0, len(wanted), _BATCH):
        resp = call(
            ssm.get_parameters, Names=wanted[start : start + _BATCH], WithDecryption=decrypt
        )
        for parameter in resp.get("Parameters", []):
            values[parameter["Name"]] = parameter["Value"]
    return values
