"""UpdateFunctionCode's ``Architectures``, which moto ignores.

On AWS the architecture belongs to the code: a release built for arm64 is applied by
UpdateFunctionCode with ``Architectures=["arm64"]``, and GetFunction then reports it.
moto keeps the architecture the function was created with, so a console that checks what
it applied would update the code forever. The in-process unit tests apply the same patch.
"""

from __future__ import annotations

from typing import Any

from opsconsole.sandbox.localaws.config import LocalAwsConfig


def patch_moto() -> None:
    from moto.awslambda.models import LambdaFunction

    if getattr(LambdaFunction.update_function_code, "_applies_architectures", False):
        return
    original = LambdaFunction.update_function_code

    def update_function_code(self, updated_spec: dict[str, Any]) -> dict[str, Any]:
        architectures = updated_spec.get("Architectures")
        if architectures:
            # The property's setter validates as Lambda does (one of x86_64, arm64).
            self.architectures = list(architectures)
        return original(self, updated_spec)

    update_function_code._applies_architectures = True  # type: ignore[attr-defined]
    LambdaFunction.update_function_code = update_function_code  # type: ignore[method-assign]


def install(config: LocalAwsConfig) -> None:
    patch_moto()


def route(request) -> None:
    return None
