"""Lambda's ``RevisionId``: a new one per change, and updates that name an old one refused.

On AWS every code or configuration update gives the function a new ``RevisionId``, and an
``UpdateFunctionCode`` or ``UpdateFunctionConfiguration`` sent with a
``RevisionId`` that is no longer the function's fails with ``PreconditionFailedException``
(412). The console's deploy step relies on that to publish exactly the code it checked
(``UpdateFunctionCode`` with ``Publish`` and the revision it read). moto shows no
``RevisionId`` in a function's configuration and ignores the parameter, so a concurrent
change would go unnoticed here and a test of the guard could not fail. Patched for the
local AWS and the in-process unit tests alike.
"""

from __future__ import annotations

import uuid

from opsconsole.sandbox.localaws.config import LocalAwsConfig

MESSAGE = (
    "The Revision Id provided does not match the latest Revision Id. "
    "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
)


def _guard(fn, expected: str | None) -> None:
    from moto.awslambda.exceptions import PreconditionFailedException

    if expected and expected != _revision(fn):
        raise PreconditionFailedException(MESSAGE)


def _revision(fn) -> str:
    if not getattr(fn, "revision_id", ""):
        fn.revision_id = str(uuid.uuid4())
    return fn.revision_id


def patch_moto() -> None:
    from moto.awslambda.models import LambdaBackend, LambdaFunction

    if getattr(LambdaBackend.update_function_code, "_revisions", False):
        return
    get_configuration = LambdaFunction.get_configuration

    def configuration(self, on_create: bool = False):
        return get_configuration(self, on_create) | {"RevisionId": _revision(self)}

    LambdaFunction.get_configuration = configuration  # type: ignore[method-assign]
    update_code = LambdaBackend.update_function_code
    update_configuration = LambdaBackend.update_function_configuration

    def update_function_code(self, function_name, qualifier, body):
        fn = self.get_function(function_name, qualifier)
        _guard(fn, body.get("RevisionId"))
        # Before the update: with Publish the new version is copied from this function,
        # so it carries the new revision, as on AWS.
        fn.revision_id = str(uuid.uuid4())
        return update_code(self, function_name, qualifier, body)

    def update_function_configuration(self, function_name, qualifier, body):
        fn = self.get_function(function_name, qualifier)
        _guard(fn, body.get("RevisionId"))
        fn.revision_id = str(uuid.uuid4())
        return update_configuration(self, function_name, qualifier, body)

    update_function_code._revisions = True  # type: ignore[attr-defined]
    LambdaBackend.update_function_code = update_function_code  # type: ignore[method-assign]
    LambdaBackend.update_function_configuration = update_function_configuration  # type: ignore[method-assign]


def install(config: LocalAwsConfig) -> None:
    patch_moto()


def route(request) -> None:
    return None
