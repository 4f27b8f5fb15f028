"""Job kinds: a name, a label and ordered steps, each a plain function.

A step function takes ``(job, step)`` and returns a dict that is saved as the step's output
(identifiers it saw or made). It must be idempotent: a step can run again after a crash.
It raises ``StepWait`` to be re-checked later without holding a worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

StepFn = Callable[..., dict[str, Any] | None]


class StepWait(Exception):  # noqa: N818 - not an error: a planned pause
    """The step is not done yet: check again in ``retry_in`` seconds."""

    def __init__(self, detail: str, *, retry_in: int = 15):
        super().__init__(detail)
        self.detail = detail
        self.retry_in = retry_in


class StepTransient(Exception):  # noqa: N818 - a condition that passes
    """The step failed for a reason that passes by itself (AWS throttled or answered a
    5xx past botocore's own retries). The runner tries the step again after a backoff,
    within the job's attempts, instead of failing the job."""


def is_transient(exc: BaseException) -> bool:
    """A StepTransient, or an error that says retrying unchanged can help (an AwsError
    with ``permanent`` False), itself or as the cause of what the step raised."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, StepTransient) or getattr(seen, "permanent", None) is False:
            return True
        seen = seen.__cause__
    return False


@dataclass(frozen=True)
class StepDef:
    name: str
    label: str
    fn: StepFn


@dataclass
class JobKind:
    name: str
    label: str
    steps: list[StepDef] = field(default_factory=list)
    on_success: Callable[..., None] | None = None
    on_failure: Callable[..., None] | None = None


_KINDS: dict[str, JobKind] = {}


def register_job_kind(
    name: str,
    *,
    label: str,
    steps: list[tuple[str, str, StepFn]],
    on_success: Callable[..., None] | None = None,
    on_failure: Callable[..., None] | None = None,
) -> JobKind:
    kind = JobKind(
        name=name,
        label=label,
        steps=[StepDef(n, lbl, fn) for n, lbl, fn in steps],
        on_success=on_success,
        on_failure=on_failure,
    )
    _KINDS[name] = kind
    return kind


def get_kind(name: str) -> JobKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise LookupError(f"Unknown job kind {name!r}") from None


def kind_label(name: str) -> str:
    kind = _KINDS.get(name)
    return kind.label if kind else name


# What a job's steps run inside, per kind of subject: the tenant's AWS account for a job
# on a tenant (opsconsole.awsaccounts registers it). The runner enters it once per run,
# around every step and hook, so no step has to know which account it works in.
SubjectContext = Callable[[str], AbstractContextManager[Any]]
_SUBJECT_CONTEXTS: dict[str, SubjectContext] = {}


def register_subject_context(subject_type: str, context: SubjectContext) -> None:
    """``context(subject_id)`` makes the context every step of a job on that subject
    runs in."""
    _SUBJECT_CONTEXTS[subject_type] = context


def subject_context(subject_type: str, subject_id: str) -> AbstractContextManager[Any]:
    context = _SUBJECT_CONTEXTS.get(subject_type)
    if context is None or not subject_id:
        return contextlib.nullcontext()
    return context(subject_id)
