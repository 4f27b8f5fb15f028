"""Lambda's Invoke API, answered by running the function's code.

``POST /2015-03-31/functions/<name|ARN>/invocations`` (``?Qualifier=``) and the legacy
``POST /2014-11-13/functions/<name>/invoke-async/`` are taken from moto: the function,
version or alias is resolved through moto's Lambda backend (with ``use_docker`` off that is
``moto.awslambda.utils.get_backend``'s, not ``get_backend("lambda")``; an alias with a routing
configuration picks a version by its weights, at random per invoke), the event runs in an
execution environment (``lambda_executor``), and the answer is shaped as AWS's:

- 200 with the function's payload; ``X-Amz-Function-Error: Unhandled`` and the error
  document (``errorMessage``, ``errorType``, ``stackTrace``) when it failed;
  ``X-Amz-Executed-Version``; ``X-Amz-Log-Result`` (the last 4 KB of the log, base64)
  when ``X-Amz-Log-Type: Tail``; ``InvocationType`` Event answers 202 and runs in the
  background, DryRun 204;
- errors as Lambda's REST-JSON errors (``x-amzn-ErrorType`` header, ``{"Type", "message"}``
  body): 404 ResourceNotFoundException, 429 TooManyRequestsException with its ``Reason``
  (reserved concurrency exhausted, or no environment free in time), 400/413 for bad
  payloads.

Every invoke writes the function's log (``/aws/lambda/<fn>``, one stream per environment,
START / the process's output / END / REPORT) and the AWS/Lambda metrics (Invocations,
Errors, Duration, Throttles, ConcurrentExecutions by FunctionName, and by FunctionName +
Resource, + ExecutedVersion for alias invokes; ``lambda_telemetry``). ``invoke()`` is the
same path for other extensions in this process (the API Gateway proxy).
"""

from __future__ import annotations

import base64
import json
import logging
import random
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from moto.awslambda.utils import get_backend as lambda_backend
from werkzeug.wrappers import Request, Response

from opsconsole.sandbox.localaws import lambda_code, lambda_images, lambda_telemetry, telemetry
from opsconsole.sandbox.localaws.config import LocalAwsConfig
from opsconsole.sandbox.localaws.lambda_executor import (
    Executor,
    FunctionVersion,
    Throttled,
)
from opsconsole.sandbox.localaws.moto_state import ACCOUNT_ID, region_of
from opsconsole.sandbox.localaws.runtime_api import Invocation

logger = logging.getLogger(__name__)

_INVOKE = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")
_INVOKE_ASYNC = re.compile(r"^/2014-11-13/functions/(?P<name>[^/]+)/invoke-async/?$")
_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:(?P<rest>.+)$"
)
_PARTIAL_ARN = re.compile(r"^(?P<account>\d{12}):function:(?P<rest>.+)$")
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD = 1024 * 1024
LOG_TAIL_BYTES = 4096
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
# Throttled asynchronous events are retried (Lambda keeps them up to 6 hours; we stop
# after about a minute), failed ones up to MaximumRetryAttempts (2) times.
_EVENT_THROTTLE_RETRIES = (1, 2, 4, 8, 16, 32)
_EVENT_ERROR_DELAYS_S = (60, 120)

_executor: Executor | None = None
_background = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lambda-event")


@dataclass
class InvokeResult:
    status: int  # the Invoke API's HTTP status (200, 202, 204, 400, 404, 429, ...)
    payload: bytes  # function response, or the error document
    function_error: str | None  # "Unhandled" or None
    executed_version: str
    log_tail: str  # the invoke's log, last 4 KB (plain text; the API sends it base64)
    # For statuses >= 400: the API's error code (x-amzn-ErrorType), e.g. TooManyRequestsException.
    error_type: str | None = None
    request_id: str = ""


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def result(self, request_id: str) -> InvokeResult:
        key = "Message" if self.code == "ResourceNotFoundException" else "message"
        document = {"Type": "User", key: self.message, **self.extra}
        return InvokeResult(
            status=self.status,
            payload=json.dumps(document).encode("utf-8"),
            function_error=None,
            executed_version="",
            log_tail="",
            error_type=self.code,
            request_id=request_id,
        )


@dataclass
class _Target:
    region: str
    name: str
    qualifier: str | None  # as invoked (alias, version, $LATEST) or None
    alias: str | None
    spec: FunctionVersion
    reserved: int | None
    invoked_arn: str
    latest: Any

    @property
    def metrics_key(self) -> lambda_telemetry.Resource:
        return lambda_telemetry.Resource(
            region=self.region,
            function=self.name,
            qualifier=self.qualifier,
            alias=self.alias,
            executed_version=self.spec.version,
        )


def install(config: LocalAwsConfig) -> None:
    global _executor
    lambda_images.install(config)
    _executor = Executor(config)
    _hook_moto_triggers()
    _say_runtime_stand_in()
    try:
        lambda_code.python_runtime_dir(config.state_dir)
    except Exception:  # noqa: BLE001 - python functions will say why when invoked
        logger.exception("the Python runtime directory for Lambda could not be built")


def _say_runtime_stand_in() -> None:
    """A function whose Python runtime this machine's Python stands in for says so in its
    configuration (``StateReason``), where the console shows what Lambda says of a
    function; its cold starts log the same line."""
    from moto.awslambda.models import LambdaFunction

    if getattr(LambdaFunction.get_configuration, "_says_stand_in", False):
        return
    original = LambdaFunction.get_configuration

    def get_configuration(self, *args, **kwargs):
        configuration = original(self, *args, **kwargs)
        note = lambda_code.python_version_note(configuration.get("Runtime"))
        if note and not configuration.get("StateReason"):
            configuration["StateReason"] = note
        return configuration

    get_configuration._says_stand_in = True  # type: ignore[attr-defined]
    LambdaFunction.get_configuration = get_configuration  # type: ignore[method-assign]


def _hook_moto_triggers() -> None:
    """What moto itself invokes runs the code too: SQS event source mappings, EventBridge
    targets and Secrets Manager rotation call the backend's ``invoke`` (synchronous, as
    pollers and rotation are on AWS); SNS, S3 and logs subscriptions call the function's
    ``_invoke_lambda``, answered as the asynchronous invokes they are on AWS."""
    from moto.awslambda.models import LambdaFunction
    from moto.awslambda_simple.models import LambdaSimpleBackend

    if getattr(LambdaSimpleBackend.invoke, "_runs_code", False):
        return

    def backend_invoke(self, function_name, qualifier, body, headers, response_headers):
        invocation_type = (headers or {}).get("X-Amz-Invocation-Type") or "RequestResponse"
        result = _invoke(
            region=self.region_name,
            function=function_name,
            qualifier=qualifier,
            payload=body.encode("utf-8") if isinstance(body, str) else (body or b""),
            invocation_type=invocation_type,
            client_context=None,
        )
        if result.function_error or result.status >= 400:
            response_headers["x-amz-function-error"] = result.function_error or "Unhandled"
        response_headers["Content-Length"] = str(len(result.payload))
        return result.payload

    def invoke_lambda(self, event=None):
        _invoke(
            region=self.region,
            function=self.function_name,
            qualifier=None if str(self.version) == "$LATEST" else str(self.version),
            payload=json.dumps(event if event is not None else {}).encode("utf-8"),
            invocation_type="Event",
            client_context=None,
        )
        return "", False, ""

    backend_invoke._runs_code = True  # type: ignore[attr-defined]
    LambdaSimpleBackend.invoke = backend_invoke
    LambdaFunction._invoke_lambda = invoke_lambda


def executor() -> Executor:
    if _executor is None:
        raise RuntimeError("lambda_invoke.install() was not called")
    return _executor


def invoke(
    *,
    region: str,
    function: str,
    qualifier: str | None,
    payload: bytes,
    invocation_type: str = "RequestResponse",
) -> InvokeResult:
    """Invoke a function as the Invoke API does (same statuses, payloads and telemetry)."""
    return _invoke(
        region=region,
        function=function,
        qualifier=qualifier,
        payload=payload,
        invocation_type=invocation_type,
        client_context=None,
    )


def route(request: Request) -> Response | None:
    if request.method != "POST":
        return None
    match = _INVOKE.match(request.path)
    legacy = None if match else _INVOKE_ASYNC.match(request.path)
    if not match and not legacy:
        return None
    region = region_of(request.environ)
    headers = request.headers
    invocation_type = "Event" if legacy else headers.get("X-Amz-Invocation-Type", "")
    result = _invoke(
        region=region,
        function=unquote((match or legacy).group("name")),
        qualifier=request.args.get("Qualifier") or request.args.get("qualifier"),
        payload=request.get_data(cache=True),
        invocation_type=invocation_type or "RequestResponse",
        client_context=headers.get("X-Amz-Client-Context"),
    )
    if legacy and result.status == 202:
        result.payload = b'{"Status": 202}'
    return _http(result, tail=headers.get("X-Amz-Log-Type") == "Tail")


def _http(result: InvokeResult, *, tail: bool) -> Response:
    headers = {"x-amzn-RequestId": result.request_id, "Content-Type": "application/json"}
    if result.status >= 400:
        headers["x-amzn-ErrorType"] = result.error_type or "ServiceException"
    elif result.status == 200:
        headers["X-Amz-Executed-Version"] = result.executed_version
        if result.function_error:
            headers["X-Amz-Function-Error"] = result.function_error
        if tail:
            headers["X-Amz-Log-Result"] = base64.b64encode(result.log_tail.encode()).decode()
    return Response(result.payload, status=result.status, headers=headers)


# --- one invoke ---------------------------------------------------------------------------


def _invoke(
    *,
    region: str,
    function: str,
    qualifier: str | None,
    payload: bytes,
    invocation_type: str,
    client_context: str | None,
) -> InvokeResult:
    request_id = str(uuid.uuid4())
    try:
        if invocation_type not in INVOCATION_TYPES:
            raise _ApiError(
                400,
                "ValidationException",
                f"1 validation error detected: Value '{invocation_type}' at 'invocationType' "
                "failed to satisfy constraint: Member must satisfy enum value set: "
                "[Event, RequestResponse, DryRun]",
            )
        target = _resolve(region, function, qualifier)
        payload = _checked_payload(payload, invocation_type)
        context = _client_context(client_context)
    except _ApiError as exc:
        return exc.result(request_id)
    if invocation_type == "DryRun":
        return InvokeResult(204, b"", None, target.spec.version, "", request_id=request_id)
    if invocation_type == "Event":
        _background.submit(_run_event, target, payload, request_id, 0)
        return InvokeResult(202, b"", None, target.spec.version, "", request_id=request_id)
    try:
        return _run(target, payload, request_id, context)
    except _ApiError as exc:
        return exc.result(request_id)


def _checked_payload(payload: bytes, invocation_type: str) -> bytes:
    limit = MAX_ASYNC_PAYLOAD if invocation_type == "Event" else MAX_SYNC_PAYLOAD
    if len(payload) > limit:
        raise _ApiError(
            413,
            "RequestEntityTooLargeException",
            f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
        )
    if not payload.strip():
        return b"{}"
    try:
        json.loads(payload)
    except ValueError as exc:
        raise _ApiError(
            400,
            "InvalidRequestContentException",
            f"Could not parse request body into json: Could not parse payload into json: {exc}",
        ) from exc
    return payload


def _client_context(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except ValueError as exc:
        raise _ApiError(
            400, "InvalidRequestContentException", "Client context must be base64 JSON"
        ) from exc


def _split(function: str) -> tuple[str | None, str, str | None]:
    """(region from an ARN, function name, qualifier in the name)."""
    region = None
    match = _ARN.match(function)
    if match:
        region, rest = match.group("region"), match.group("rest")
    else:
        partial = _PARTIAL_ARN.match(function)
        rest = partial.group("rest") if partial else function
    name, _, qualifier = rest.partition(":")
    return region, name, qualifier or None


def _not_found(region: str, name: str, qualifier: str | None) -> _ApiError:
    arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}"
    return _ApiError(
        404,
        "ResourceNotFoundException",
        f"Function not found: {arn}{':' + qualifier if qualifier else ''}",
    )


def _resolve(region: str, function: str, qualifier: str | None) -> _Target:
    arn_region, name, named_qualifier = _split(function)
    region = arn_region or region
    if named_qualifier and qualifier and named_qualifier != qualifier:
        raise _ApiError(
            400,
            "InvalidParameterValueException",
            "The derived qualifier from the function name does not match the specified qualifier.",
        )
    qualifier = named_qualifier or qualifier
    lam = lambda_backend(ACCOUNT_ID, region)
    try:
        latest = lam.get_function(name)
    except Exception as exc:  # noqa: BLE001 - moto's UnknownFunctionException
        raise _not_found(region, name, None) from exc
    alias = None
    version = "$LATEST"
    if qualifier and qualifier != "$LATEST":
        if qualifier.isdigit():
            version = qualifier
        else:
            try:
                alias_model = lam.get_alias(qualifier, name)
            except Exception as exc:  # noqa: BLE001 - moto's UnknownAliasException
                raise _not_found(region, name, qualifier) from exc
            alias = qualifier
            version = _weighted_version(alias_model)
    if version == "$LATEST":
        model = latest
    else:
        try:
            model = lam.get_function(name, version)
        except Exception as exc:  # noqa: BLE001
            raise _not_found(region, name, qualifier) from exc
    arn = latest.function_arn.split(":$LATEST")[0]
    reserved = latest.reserved_concurrency
    return _Target(
        region=region,
        name=latest.function_name,
        qualifier=qualifier,
        alias=alias,
        spec=_spec(region, arn, version, model),
        reserved=int(reserved) if reserved is not None and reserved != "" else None,
        invoked_arn=f"{arn}:{qualifier}" if qualifier else arn,
        latest=latest,
    )


def _weighted_version(alias: Any) -> str:
    weights = (alias.routing_config or {}).get("AdditionalVersionWeights") or {}
    if weights:
        draw = random.random()  # noqa: S311 - traffic shifting, not security
        for version, weight in weights.items():
            draw -= float(weight)
            if draw < 0:
                return str(version)
    return str(alias.function_version)


def _spec(region: str, arn: str, version: str, fn: Any) -> FunctionVersion:
    variables = fn.environment_vars or {}
    image = fn.image_config
    code_key = getattr(fn, "code_digest", None) or (fn.code or {}).get("ImageUri")
    return FunctionVersion(
        region=region,
        name=fn.function_name,
        arn=arn,
        version=version,
        runtime=fn.run_time,
        handler=fn.handler,
        memory_mb=int(fn.memory_size),
        timeout_s=float(fn.timeout),
        variables=variables,
        package_type=fn.package_type or "Zip",
        fingerprint=(
            code_key,
            fn.handler,
            fn.run_time,
            fn.memory_size,
            fn.timeout,
            tuple(sorted(variables.items())),
            fn.package_type,
            tuple(layer["Arn"] for layer in fn.layers or []),
            (tuple(image.entry_point or ()), tuple(image.cmd or ()), image.working_directory),
        ),
        model=fn,
    )


def _run(target: _Target, payload: bytes, request_id: str, context: str | None) -> InvokeResult:
    spec = target.spec
    invocation = Invocation(
        request_id=request_id,
        payload=payload,
        deadline_ms=int(time.time() * 1000 + spec.timeout_s * 1000),
        function_arn=target.invoked_arn,
        trace_id=(
            f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};"
            f"Parent={uuid.uuid4().hex[:16]};Sampled=0"
        ),
        client_context=context,
    )
    try:
        outcome = executor().run(spec, invocation, reserved=target.reserved)
    except Throttled as throttle:
        lambda_telemetry.put_metrics(target.metrics_key, [("Throttles", 1.0, "Count")])
        message = "Rate Exceeded."
        if throttle.reason == "ConcurrentInvocationLimitExceeded":
            message = "Rate Exceeded. (no execution environment of this version was free)"
        raise _ApiError(429, "TooManyRequestsException", message, Reason=throttle.reason) from None
    lines = lambda_telemetry.log_lines(outcome, spec)
    try:
        telemetry.write_logs(
            region=target.region,
            group=f"/aws/lambda/{spec.name}",
            stream=outcome.stream,
            lines=lines,
        )
    except Exception:  # noqa: BLE001 - the invoke's answer matters more than its log
        logger.exception("could not write the log of %s", request_id)
    failed = outcome.kind != "ok"
    lambda_telemetry.put_metrics(
        target.metrics_key,
        [
            ("Invocations", 1.0, "Count"),
            ("Errors", 1.0 if failed else 0.0, "Count"),
            ("Duration", round(outcome.duration_ms, 2), "Milliseconds"),
        ],
        concurrency=(outcome.account_concurrency, outcome.concurrency),
    )
    text = "".join(f"{message}\n" for _, message in lines).encode("utf-8")
    return InvokeResult(
        status=200,
        payload=outcome.payload,
        function_error="Unhandled" if failed else None,
        executed_version=spec.version,
        log_tail=text[-LOG_TAIL_BYTES:].decode("utf-8", "ignore"),
        request_id=request_id,
    )


def _run_event(target: _Target, payload: bytes, request_id: str, attempt: int) -> None:
    for delay in (*_EVENT_THROTTLE_RETRIES, None):
        try:
            result = _run(target, payload, request_id, None)
            break
        except _ApiError as exc:
            if exc.status != 429 or delay is None:
                logger.warning("async invoke %s dropped: %s", request_id, exc.message)
                return
            time.sleep(delay)
    if result.function_error and attempt < _max_retries(target):
        delay = _EVENT_ERROR_DELAYS_S[min(attempt, len(_EVENT_ERROR_DELAYS_S) - 1)]
        timer = threading.Timer(
            delay, lambda: _background.submit(_run_event, target, payload, request_id, attempt + 1)
        )
        timer.daemon = True
        timer.start()


def _max_retries(target: _Target) -> int:
    for config in getattr(target.latest, "event_invoke_config", None) or []:
        if "MaximumRetryAttempts" in config.config:
            return int(config.config["MaximumRetryAttempts"])
    return len(_EVENT_ERROR_DELAYS_S)
