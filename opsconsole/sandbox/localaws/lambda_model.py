"""The Lambda model: the local AWS answering with real Lambda's timing and limits, for
benchmarks (``bench/rollout.py``). Off unless asked for.

moto answers at once, never reports an update in progress and admits any number of calls;
real Lambda does none of that, so a rollout measured against plain moto says nothing about
a rollout on AWS. Armed, the model adds, behind botocore (signing, retries and parsing are
the real client's):

- ``latency_s`` (0.1) per call the console makes, every service: the round trip to AWS;
- ``update_s`` (5): after UpdateFunctionCode or UpdateFunctionConfiguration the function
  (and the version published with the update) reports ``LastUpdateStatus: InProgress``,
  and another update or PublishVersion meanwhile answers ResourceConflictException (409),
  as Lambda does while it applies an update;
- ``limit`` (15): Lambda's control plane admits that many requests in any one second per
  account and region; the rest answer ``TooManyRequestsException`` (429, ``Reason:
  CallerRateLimitExceeded``). Invoke, GetFunction and GetPolicy are outside that limit, as
  on AWS. The account is the one moto gives the request's access key (assumed-role keys
  name their role's account);
- ``invoke``: ``"model"`` (default) answers Invoke after ``latency_s`` with a healthy HTTP
  answer in API Gateway's proxy shape (``statusCode`` 200): what the bench measures is the
  console and Lambda's control plane, and a cold start per tenant version would make the
  machine's CPU, not the console, the bottleneck. ``"run"`` runs the code (``lambda_invoke``).

Armed at start by ``LOCALAWS_LAMBDA_MODEL=1`` (``--lambda-model``; the figures from
``LOCALAWS_LAMBDA_MODEL_LATENCY_S``, ``_UPDATE_S``, ``_LIMIT``, ``_INVOKE``), or at any time
by ``POST /_localaws/lambda-model`` with a JSON body of those keys (which also resets the
counters); ``GET`` reports the counters (calls by operation, control-plane calls and
throttles by account and region, updates, conflicts); ``DELETE`` disarms. Calls from
function code (their session token) pass untouched, as in ``faults``.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from werkzeug.wrappers import Request, Response

from opsconsole.sandbox.localaws.faults import FUNCTION_TOKEN

PATH = "/_localaws/lambda-model"
ENV = "LOCALAWS_LAMBDA_MODEL"
_SIGNED = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
# Lambda's REST paths: /<api version>/functions/<name>[/<what>[/<more>]].
_PATH = re.compile(r"^/(?P<api>20\d\d-\d\d-\d\d)/functions/?(?P<name>[^/]*)/?(?P<rest>.*)$")
# Outside the 15/s (AWS's Lambda quotas page: "Control plane API requests (excludes
# invocation, GetFunction, and GetPolicy requests)").
UNLIMITED = {"Invoke", "InvokeAsync", "GetFunction", "GetPolicy"}
UPDATES = {"UpdateFunctionCode", "UpdateFunctionConfiguration"}


@dataclass
class _Model:
    armed: bool = False
    latency_s: float = 0.1
    update_s: float = 5.0
    limit: int = 15
    invoke: str = "model"
    calls: Counter = field(default_factory=Counter)
    control: Counter = field(default_factory=Counter)
    throttled: Counter = field(default_factory=Counter)
    updates: int = 0
    conflicts: int = 0
    # Admitted control-plane calls of the last second, per (account, region).
    windows: dict[tuple[str, str], deque] = field(default_factory=dict)


_model = _Model()
_lock = threading.Lock()
# Set while moto applies an update in this thread (its Publish calls publish_version).
_inside = threading.local()


def arm(*, latency_s=0.1, update_s=5.0, limit=15, invoke="model") -> None:
    global _model
    if invoke not in ("model", "run"):
        raise ValueError(f"invoke: 'model' or 'run', not {invoke!r}")
    with _lock:
        _model = _Model(
            armed=True,
            latency_s=float(latency_s),
            update_s=float(update_s),
            limit=int(limit),
            invoke=invoke,
        )


def install(config) -> None:  # noqa: ARG001 - the model reads its own variables
    _patch_moto()
    if os.environ.get(ENV, "") in {"1", "true", "yes"}:
        arm(
            latency_s=os.environ.get(f"{ENV}_LATENCY_S", "0.1"),
            update_s=os.environ.get(f"{ENV}_UPDATE_S", "5"),
            limit=os.environ.get(f"{ENV}_LIMIT", "15"),
            invoke=os.environ.get(f"{ENV}_INVOKE", "model"),
        )


def operation(method: str, path: str) -> str:
    """Lambda's operation name for a REST request (the ones a console makes; others get
    a generic name, limited like every control-plane call)."""
    found = _PATH.match(path)
    if not found:
        return f"{method} {path.split('/')[2] if path.count('/') > 1 else path}"
    name, rest = found.group("name"), found.group("rest").rstrip("/")
    if found.group("api") == "2014-11-13":
        return "InvokeAsync"
    if not name:
        return {"GET": "ListFunctions", "POST": "CreateFunction"}.get(method, method)
    head, _, tail = rest.partition("/")
    table = {
        ("", "GET"): "GetFunction",
        ("", "DELETE"): "DeleteFunction",
        ("invocations", "POST"): "Invoke",
        ("configuration", "GET"): "GetFunctionConfiguration",
        ("configuration", "PUT"): "UpdateFunctionConfiguration",
        ("code", "PUT"): "UpdateFunctionCode",
        ("versions", "POST"): "PublishVersion",
        ("versions", "GET"): "ListVersionsByFunction",
        ("policy", "GET"): "GetPolicy",
        ("policy", "POST"): "AddPermission",
        ("policy", "DELETE"): "RemovePermission",
        ("concurrency", "PUT"): "PutFunctionConcurrency",
        ("concurrency", "DELETE"): "DeleteFunctionConcurrency",
        ("concurrency", "GET"): "GetFunctionConcurrency",
    }
    if head == "aliases":
        if tail:
            return {"GET": "GetAlias", "PUT": "UpdateAlias", "DELETE": "DeleteAlias"}.get(
                method, f"{method} alias"
            )
        return {"GET": "ListAliases", "POST": "CreateAlias"}.get(method, f"{method} aliases")
    return table.get((head, method), f"{method} {head or 'function'}")


def route(request: Request) -> Response | None:
    if request.path == PATH:
        return _control(request)
    model = _model
    if not model.armed:
        return None
    signed = _SIGNED.search(request.headers.get("Authorization", ""))
    if not signed or request.headers.get("X-Amz-Security-Token") == FUNCTION_TOKEN:
        return None
    access_key, region, service = signed.groups()
    op = operation(request.method, request.path) if service == "lambda" else service
    throttled = False
    if service == "lambda" and op not in UNLIMITED:
        throttled = not _admit(model, _account(access_key), region)
    with _lock:
        model.calls[op] += 1
    if model.latency_s:
        time.sleep(model.latency_s)
    if throttled:
        return _rest_json(
            429, "TooManyRequestsException", "Rate exceeded", Reason="CallerRateLimitExceeded"
        )
    if op == "Invoke" and model.invoke == "model":
        return _modelled_invoke(request)
    return None


def _admit(model: _Model, account: str, region: str) -> bool:
    key = (account, region)
    now = time.monotonic()
    with _lock:
        window = model.windows.setdefault(key, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        name = f"{account}/{region}"
        if len(window) >= model.limit:
            model.throttled[name] += 1
            return False
        window.append(now)
        model.control[name] += 1
        return True


def _account(access_key: str) -> str:
    from moto.iam.models import get_account_id_from

    return get_account_id_from(access_key)


def _modelled_invoke(request: Request) -> Response:
    body = json.dumps({"status": "ok", "answered_by": "the local AWS's Lambda model"})
    payload = {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": body}
    return Response(
        json.dumps(payload),
        status=200,
        headers={"X-Amz-Executed-Version": request.args.get("Qualifier") or "$LATEST"},
        content_type="application/json",
    )


def _control(request: Request) -> Response:
    if request.method == "POST":
        body = json.loads(request.get_data() or b"{}")
        try:
            arm(**{k: body[k] for k in ("latency_s", "update_s", "limit", "invoke") if k in body})
        except (TypeError, ValueError) as exc:
            return _rest_json(400, "ValidationException", str(exc))
    elif request.method == "DELETE":
        _model.armed = False
    model = _model
    with _lock:
        report = {
            "armed": model.armed,
            "latency_s": model.latency_s,
            "update_s": model.update_s,
            "limit": model.limit,
            "invoke": model.invoke,
            "calls": dict(model.calls),
            "control": dict(model.control),
            "throttled": dict(model.throttled),
            "updates": model.updates,
            "conflicts": model.conflicts,
        }
    return Response(json.dumps(report), content_type="application/json")


def _rest_json(status: int, code: str, message: str, **extra: str) -> Response:
    return Response(
        json.dumps({"Type": "User", "message": message, **extra}),
        status=status,
        headers={"x-amzn-ErrorType": code},
        content_type="application/json",
    )


# --- the update window, inside moto's Lambda backend -----------------------------------


def _busy_until(fn) -> float:
    return getattr(fn, "_model_busy_until", 0.0)


def _conflict(fn) -> None:
    from moto.awslambda.exceptions import LambdaClientError

    class ResourceConflictException(LambdaClientError):
        code = 409

    if _model.armed and time.monotonic() < _busy_until(fn):
        with _lock:
            _model.conflicts += 1
        raise ResourceConflictException(
            "ResourceConflictException",
            "The operation cannot be performed at this time. An update is in progress for "
            f"resource: {fn.function_arn}",
        )


def _patch_moto() -> None:
    """Updates start the window (a version published with the update is a copy of the
    function, so it carries the window too); configurations report it; updates and
    PublishVersion inside it are refused. Wraps whatever is there (lambda_revisions)."""
    from moto.awslambda.models import LambdaBackend, LambdaFunction

    if getattr(LambdaBackend, "_lambda_model", False):
        return
    LambdaBackend._lambda_model = True  # type: ignore[attr-defined]
    get_configuration = LambdaFunction.get_configuration

    def configuration(self, on_create: bool = False):
        answer = get_configuration(self, on_create)
        if _model.armed and time.monotonic() < _busy_until(self):
            answer = answer | {
                "LastUpdateStatus": "InProgress",
                "LastUpdateStatusReason": "The function is being updated.",
                "LastUpdateStatusReasonCode": "",
            }
        return answer

    def wrap_update(original):
        def update(self, function_name, qualifier, body):
            fn = self.get_function(function_name, qualifier)
            _conflict(fn)
            if _model.armed and _model.update_s:
                # Before the update: the version ``Publish`` makes is copied from it.
                fn._model_busy_until = time.monotonic() + _model.update_s
                with _lock:
                    _model.updates += 1
            _inside.update = True
            try:
                return original(self, function_name, qualifier, body)
            finally:
                _inside.update = False

        return update

    publish = LambdaBackend.publish_version

    def publish_version(self, function_name, description=""):
        # The update's own Publish is part of the update, not a second call.
        if not getattr(_inside, "update", False):
            _conflict(self.get_function(function_name))
        return publish(self, function_name, description)

    LambdaFunction.get_configuration = configuration  # type: ignore[method-assign]
    LambdaBackend.update_function_code = wrap_update(LambdaBackend.update_function_code)  # type: ignore[method-assign]
    LambdaBackend.update_function_configuration = wrap_update(  # type: ignore[method-assign]
        LambdaBackend.update_function_configuration
    )
    LambdaBackend.publish_version = publish_version  # type: ignore[method-assign]
