"""Lambda's Invoke API on the local AWS runs the function's code in real processes."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from tests.sandbox.test_lambda_common import Aws, wait_for, zip_of

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def aws(local_aws_server) -> Aws:
    return Aws(local_aws_server)


ECHO = """\
import os, time

def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        raise ValueError("boom: " + event["fail"])
    if event.get("exit"):
        os._exit(event["exit"])
    print("handling", event.get("n"))
    return {
        "event": event,
        "pid": os.getpid(),
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "invoked_arn": context.invoked_function_arn,
        "memory": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "env": {k: v for k, v in os.environ.items() if not k.startswith("AWS_SECRET")},
        "cwd": os.getcwd(),
    }
"""

CURL_BOOTSTRAP = """\
#!/bin/bash
set -euo pipefail
# The custom runtime tutorial's shape: load the handler script, then loop on /next.
source "$LAMBDA_TASK_ROOT/$(echo "$_HANDLER" | cut -d. -f1).sh"
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
header () {
  grep -Fi "$1" "$HEADERS" | tr -d '[:space:]' | cut -d: -f2-
}
while true
do
  HEADERS="$(mktemp)"
  EVENT_DATA=$(curl -sS -LD "$HEADERS" "$API/invocation/next")
  REQUEST_ID=$(header Lambda-Runtime-Aws-Request-Id)
  export DEADLINE=$(header Lambda-Runtime-Deadline-Ms)
  export INVOKED_ARN=$(header Lambda-Runtime-Invoked-Function-Arn)
  RESPONSE=$($(echo "$_HANDLER" | cut -d. -f2) "$EVENT_DATA")
  curl -sS "$API/invocation/$REQUEST_ID/response" -d "$RESPONSE"
done
"""

CURL_FUNCTION = """\
function handler () {
  EVENT_DATA=$1
  echo "got $EVENT_DATA" 1>&2;
  printf '{"received": %s, "deadline": "%s", "arn": "%s"}' \\
    "$EVENT_DATA" "$DEADLINE" "$INVOKED_ARN"
}
"""


def test_python_handler_runs_through_awslambdaric(aws):
    name = aws.function(
        {"app.py": ECHO},
        Environment={"Variables": {"GREETING": "hello"}},
        MemorySize=256,
        Timeout=7,
    )
    response, body = aws.invoke(name, {"n": 1})
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    assert body["event"] == {"n": 1}
    assert body["request_id"] == response["ResponseMetadata"]["RequestId"]
    assert body["function_name"] == name
    assert body["invoked_arn"].endswith(f":function:{name}")
    assert body["memory"] == "256"  # a string, as awslambdaric gives it on AWS
    assert 5000 < body["remaining_ms"] <= 7000
    env = body["env"]
    assert env["GREETING"] == "hello"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{name}"
    assert re.fullmatch(
        r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", env["AWS_LAMBDA_LOG_STREAM_NAME"]
    )
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    assert env["_HANDLER"] == "app.handler"
    assert env["TZ"] == ":UTC"
    assert env["AWS_ENDPOINT_URL"] == aws.endpoint
    assert re.fullmatch(r"127\.0\.0\.1:\d+", env["AWS_LAMBDA_RUNTIME_API"])
    assert env["LAMBDA_TASK_ROOT"] == body["cwd"]
    assert "AWS_ACCESS_KEY_ID" in env and "AWS_SESSION_TOKEN" in env
    assert "DJANGO_SETTINGS_MODULE" not in env and "DATABASE_URL" not in env


def test_curl_bootstrap_custom_runtime(aws):
    name = aws.function(
        {"bootstrap": CURL_BOOTSTRAP, "function.sh": CURL_FUNCTION},
        modes={"bootstrap": 0o755},
        runtime="provided.al2023",
        handler="function.handler",
    )
    before = time.time() * 1000
    for n in (1, 2):
        response, body = aws.invoke(name, {"n": n})
        assert response["StatusCode"] == 200, body
        assert "FunctionError" not in response, body
        assert body["received"] == {"n": n}
        assert before < int(body["deadline"]) < before + 10_000
        assert body["arn"].endswith(f":function:{name}")
    text = "\n".join(aws.log_messages(name))
    assert 'got {"n": 1}' in text and 'got {"n": 2}' in text
    assert '{"status":"OK"}' in text  # curl prints the Runtime API's 202 answer


def test_unhandled_exception_is_returned_as_aws_does(aws):
    name = aws.function({"app.py": ECHO})
    response, body = aws.invoke(name, {"fail": "bad input"})
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "boom: bad input"
    assert body["stackTrace"] and any("app.py" in line for line in body["stackTrace"])
    # The environment survives a function error.
    first_pid = aws.invoke(name, {"n": 1})[1]["pid"]
    assert aws.invoke(name, {"n": 2})[1]["pid"] == first_pid
    assert any("[ERROR] ValueError: boom: bad input" in m for m in aws.log_messages(name))


def test_timeout_kills_the_environment_and_the_next_invoke_starts_a_new_one(aws):
    name = aws.function({"app.py": ECHO}, Timeout=1)
    first_pid = aws.invoke(name, {"n": 1})[1]["pid"]
    started = time.monotonic()
    response, body = aws.invoke(name, {"sleep": 5})
    assert time.monotonic() - started < 4
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert re.fullmatch(
        r"RequestId: \S+ Error: Task timed out after 1\.00 seconds", body["errorMessage"]
    )
    after = aws.invoke(name, {"n": 2})[1]
    assert after["event"] == {"n": 2}
    assert after["pid"] != first_pid
    messages = aws.log_messages(name)
    assert any(m.endswith("Task timed out after 1.00 seconds") for m in messages)
    assert any(m.startswith("REPORT") and "Status: timeout" in m for m in messages)


def test_process_exit_is_a_runtime_exit_error(aws):
    name = aws.function({"app.py": ECHO}, Timeout=10)
    # Crashes one after the other (each a cold start, each pipe closed and its number
    # reused): every one is noticed at once, none waits for the timeout.
    for code in (3, 4, 5, 6, 7, 8):
        started = time.monotonic()
        response, body = aws.invoke(name, {"exit": code})
        assert time.monotonic() - started < 5
        assert response["FunctionError"] == "Unhandled"
        assert body["errorType"] == "Runtime.ExitError"
        assert re.fullmatch(
            rf"RequestId: \S+ Error: Runtime exited with error: exit status {code}",
            body["errorMessage"],
        )
    assert aws.invoke(name, {"n": 1})[1]["event"] == {"n": 1}
    messages = aws.log_messages(name)
    assert any(m.endswith("exit status 8\nRuntime.ExitError") for m in messages)
    assert any("Status: error\tError Type: Runtime.ExitError" in m for m in messages)


def test_reserved_concurrency_zero_throttles(aws):
    name = aws.function({"app.py": ECHO})
    aws.lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(ClientError) as caught:
        aws.invoke(name, {"n": 1})
    error = caught.value.response
    assert error["Error"]["Code"] == "TooManyRequestsException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert error["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert isinstance(caught.value, aws.lam.exceptions.TooManyRequestsException)
    assert aws.metric_sum("Throttles", {"FunctionName": name}) == 1
    assert aws.metric_sum("Invocations", {"FunctionName": name}) is None
    aws.lam.delete_function_concurrency(FunctionName=name)
    assert aws.invoke(name, {"n": 2})[0]["StatusCode"] == 200


def test_reserved_concurrency_n_runs_at_most_n_at_once(aws):
    name = aws.function({"app.py": ECHO})
    aws.lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    aws.invoke(name, {"n": 0})  # warm, so the slow invoke below starts at once
    slow = threading.Thread(target=aws.invoke, args=(name, {"sleep": 3}))
    slow.start()
    time.sleep(1)  # the slow invoke is in flight (generous on a loaded machine)
    with pytest.raises(aws.lam.exceptions.TooManyRequestsException):
        aws.invoke(name, {"n": 1})
    slow.join()
    assert aws.invoke(name, {"n": 2})[0]["StatusCode"] == 200


def test_alias_routing_weights_split_invokes(aws):
    name = aws.function({"app.py": "def handler(event, context):\n    return 'one'\n"})
    aws.lam.publish_version(FunctionName=name)
    aws.lam.update_function_code(
        FunctionName=name,
        ZipFile=zip_of({"app.py": "def handler(event, context):\n    return 'two'\n"}),
    )
    aws.lam.publish_version(FunctionName=name)
    aws.lam.create_alias(
        FunctionName=name,
        Name="live",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}},
    )

    def one(_):
        response = aws.lam.invoke(FunctionName=name, Qualifier="live", Payload=b"{}")
        return response["ExecutedVersion"], json.loads(response["Payload"].read())

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(one, range(1000)))
    versions = Counter(version for version, _ in results)
    assert set(versions) <= {"1", "2"}
    assert all(payload == {"1": "one", "2": "two"}[version] for version, payload in results)
    # Binomial(1000, 0.1): mean 100, sigma 9.5; 4 sigma either side.
    assert 62 <= versions["2"] <= 138, versions
    resource = {"FunctionName": name, "Resource": f"{name}:live"}
    assert aws.metric_sum("Invocations", resource) == 1000
    assert aws.metric_sum("Invocations", {**resource, "ExecutedVersion": "2"}) == versions["2"]
    assert aws.metric_sum("Invocations", {"FunctionName": name}) == 1000
    # The health page charts the alias's concurrency.
    assert aws.metric_sum("ConcurrentExecutions", resource) >= 1000


def test_cold_start_then_warm_reuse(aws):
    name = aws.function({"app.py": ECHO})
    first = aws.invoke(name, {"n": 1})[1]
    second = aws.invoke(name, {"n": 2})[1]
    assert first["pid"] == second["pid"]
    reports = [m for m in aws.log_messages(name) if m.startswith("REPORT")]
    assert len(reports) == 2
    assert "Init Duration: " in reports[0]
    assert "Init Duration" not in reports[1]


def test_logs_have_start_output_end_report(aws):
    name = aws.function({"app.py": ECHO}, MemorySize=512)
    response, body = aws.invoke(name, {"n": 42}, LogType="Tail")
    request_id = response["ResponseMetadata"]["RequestId"]
    messages = aws.log_messages(name)
    start = messages.index(f"START RequestId: {request_id} Version: $LATEST")
    end = messages.index(f"END RequestId: {request_id}")
    assert start < messages.index("handling 42") < end
    report = messages[end + 1]
    assert re.match(
        rf"REPORT RequestId: {request_id}\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
        r"Memory Size: 512 MB\tMax Memory Used: \d+ MB\tInit Duration: \d+\.\d\d ms",
        report,
    ), report
    streams = aws.logs.describe_log_streams(logGroupName=f"/aws/lambda/{name}")["logStreams"]
    assert [s["logStreamName"] for s in streams] == [body["env"]["AWS_LAMBDA_LOG_STREAM_NAME"]]
    tail = base64.b64decode(response["LogResult"]).decode()
    assert "handling 42" in tail and f"REPORT RequestId: {request_id}\t" in tail


def test_metrics_count_invocations_and_errors(aws):
    name = aws.function({"app.py": ECHO})
    for n in range(3):
        aws.invoke(name, {"n": n})
    for _ in range(2):
        aws.invoke(name, {"fail": "x"})
    dims = {"FunctionName": name}
    assert aws.metric_sum("Invocations", dims) == 5
    assert aws.metric_sum("Errors", dims) == 2
    assert aws.metric_sum("Duration", dims) > 0
    assert aws.metric_sum("ConcurrentExecutions", dims) >= 5


def test_only_the_runtime_packages_are_importable(aws):
    name = aws.function({"app.py": "import django\n\ndef handler(event, context):\n    return 1\n"})
    response, body = aws.invoke(name)
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert body["errorMessage"] == "Unable to import module 'app': No module named 'django'"
    assert body["requestId"] == response["ResponseMetadata"]["RequestId"]
    probe = aws.function(
        {
            "app.py": (
                "import importlib.util, boto3, botocore\n"
                "def handler(event, context):\n"
                "    names = ['django', 'psycopg', 'moto', 'celery', 'werkzeug', 'opsconsole']\n"
                "    return {n: importlib.util.find_spec(n) is not None for n in names}\n"
            )
        }
    )
    assert aws.invoke(probe)[1] == {
        "django": False,
        "psycopg": False,
        "moto": False,
        "celery": False,
        "werkzeug": False,
        "opsconsole": False,
    }


def test_runtime_version_mismatch_is_said_in_the_log(aws):
    name = aws.function({"app.py": ECHO}, runtime="python3.12")
    assert aws.invoke(name, {"n": 1})[0]["StatusCode"] == 200
    assert any(
        re.fullmatch(r"opsconsole sandbox: runtime python3\.12 runs on Python 3\.11\.\d+ here", m)
        for m in aws.log_messages(name)
    )


def test_boto3_inside_the_function_reads_a_secret_from_the_sandbox(aws):
    secret = aws.client("secretsmanager").create_secret(
        Name=f"db-{time.time_ns()}", SecretString='{"password": "s3cret"}'
    )
    name = aws.function(
        {
            "app.py": (
                "import json, os, boto3\n"
                "client = boto3.client('secretsmanager')\n"
                "def handler(event, context):\n"
                "    value = client.get_secret_value(SecretId=os.environ['SECRET_ARN'])\n"
                "    return json.loads(value['SecretString'])\n"
            )
        },
        Environment={"Variables": {"SECRET_ARN": secret["ARN"]}},
        Timeout=10,
    )
    response, body = aws.invoke(name)
    assert "FunctionError" not in response, body
    assert body == {"password": "s3cret"}


def test_missing_function_and_qualifier_are_404(aws):
    with pytest.raises(aws.lam.exceptions.ResourceNotFoundException) as caught:
        aws.invoke("no-such-function")
    assert "Function not found: arn:aws:lambda:us-east-1:" in str(caught.value)
    name = aws.function({"app.py": ECHO})
    with pytest.raises(aws.lam.exceptions.ResourceNotFoundException):
        aws.invoke(name, Qualifier="nope")
    with pytest.raises(aws.lam.exceptions.ResourceNotFoundException):
        aws.invoke(name, Qualifier="7")


def test_event_and_dry_run_invocation_types(aws):
    name = aws.function({"app.py": ECHO})
    dry = aws.lam.invoke(FunctionName=name, InvocationType="DryRun", Payload=b"{}")
    assert dry["StatusCode"] == 204
    assert aws.log_messages(name) == []
    event = aws.lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"n": 7}')
    assert event["StatusCode"] == 202
    assert wait_for(lambda: "handling 7" in aws.log_messages(name))


def test_bad_payload_and_unrunnable_code(aws):
    name = aws.function({"app.py": ECHO})
    with pytest.raises(aws.lam.exceptions.InvalidRequestContentException):
        aws.lam.invoke(FunctionName=name, Payload=b"not json")
    node = aws.function({"index.js": "exports.handler = async () => 1"}, runtime="nodejs20.x")
    response, body = aws.invoke(node)
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.UnsupportedRuntime"
    assert "nodejs20.x" in body["errorMessage"]
    plain = aws.function({"bootstrap": "#!/bin/sh\n"}, runtime="provided.al2023", handler="x")
    response, body = aws.invoke(plain)
    assert body["errorType"] == "Runtime.InvalidEntrypoint"
    assert "permission denied" in body["errorMessage"]


def test_init_error_posted_by_a_bootstrap(aws):
    bootstrap = (
        "#!/bin/sh\n"
        'curl -sS -X POST "http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/init/error" '
        "-H 'Lambda-Runtime-Function-Error-Type: Runtime.ConfigError' "
        '-d \'{"errorMessage": "DATABASE_URL is not set", "errorType": "Runtime.ConfigError"}\'\n'
        "exit 1\n"
    )
    name = aws.function(
        {"bootstrap": bootstrap}, modes={"bootstrap": 0o755}, runtime="provided.al2", handler="x"
    )
    response, body = aws.invoke(name)
    assert response["FunctionError"] == "Unhandled"
    assert body == {"errorMessage": "DATABASE_URL is not set", "errorType": "Runtime.ConfigError"}
    assert any(
        m.startswith("INIT_REPORT") and "Runtime.ConfigError" in m for m in aws.log_messages(name)
    )


def test_new_code_on_latest_gets_new_environments(aws):
    name = aws.function(
        {"app.py": "import os\ndef handler(e, c):\n    return ['a', os.getpid()]\n"}
    )
    first = aws.invoke(name)[1]
    aws.lam.update_function_code(
        FunctionName=name,
        ZipFile=zip_of(
            {"app.py": "import os\ndef handler(e, c):\n    return ['b', os.getpid()]\n"}
        ),
    )
    second = aws.invoke(name)[1]
    assert first[0] == "a" and second[0] == "b" and first[1] != second[1]
    aws.lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"X": "1"}})
    assert aws.invoke(name)[1][1] != second[1]


def test_layers_are_on_the_python_path_as_opt_python(aws):
    layer = aws.lam.publish_layer_version(
        LayerName="helpers",
        Content={"ZipFile": zip_of({"python/helper.py": "ANSWER = 42\n"})},
        CompatibleRuntimes=["python3.11"],
    )
    name = aws.function(
        {"app.py": "import helper\ndef handler(event, context):\n    return helper.ANSWER\n"},
        Layers=[layer["LayerVersionArn"]],
    )
    response, body = aws.invoke(name)
    assert "FunctionError" not in response, body
    assert body == 42
