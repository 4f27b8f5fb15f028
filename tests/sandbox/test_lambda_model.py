"""The local AWS's Lambda model (lambda_model.py), judged through botocore as the console
and the rollout bench meet it: the latency of a call, the 15/s control-plane limit per
account and region as a parsed TooManyRequestsException (GetFunction and Invoke outside
it), the InProgress window after an update with its 409 for a second update, and the
modelled Invoke."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from opsconsole.sandbox import services
from tests.sandbox.test_lambda_common import Aws

pytestmark = pytest.mark.integration

APP = "def handler(event, context):\n    return {'statusCode': 500}\n"


@pytest.fixture(scope="module")
def model_server(tmp_path_factory):
    saved = dict(os.environ)
    os.environ.update(
        LOCALAWS_LAMBDA_MODEL="1",
        LOCALAWS_STATE_DIR=str(tmp_path_factory.mktemp("localaws-state")),
    )
    try:
        port = services.free_port()
        proc = services.start_local_aws(
            port=port, log_path=tmp_path_factory.mktemp("localaws") / "log"
        )
    finally:
        os.environ.clear()
        os.environ.update(saved)
    endpoint = f"http://127.0.0.1:{port}"
    yield endpoint, Aws(endpoint)
    services.stop_process(proc)


def control(endpoint: str, method: str = "GET", **body) -> dict:
    request = urllib.request.Request(  # noqa: S310 - the local AWS
        f"{endpoint}/_localaws/lambda-model",
        method=method,
        data=json.dumps(body).encode() if method == "POST" else None,
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - local
        return json.loads(answer.read())


def burst(call, n: int) -> list[str]:
    """``n`` calls at once, each on its own thread: the error code each got ('' = none)."""
    codes = [""] * n

    def one(i: int) -> None:
        try:
            call()
        except ClientError as exc:
            codes[i] = exc.response["Error"]["Code"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes


def test_control_plane_admits_15_a_second_and_throttles_the_rest(model_server):
    endpoint, aws = model_server
    name = aws.function({"app.py": APP})
    control(endpoint, "POST", latency_s=0.1, update_s=5, limit=15)
    # 30 at once: 15 fit in the second, the other 15 are refused as AWS refuses them.
    codes = burst(lambda: aws.lam.get_function_configuration(FunctionName=name), 30)
    assert codes.count("TooManyRequestsException") == 15, codes
    assert codes.count("") == 15
    report = control(endpoint)
    assert sum(report["throttled"].values()) == 15
    # The parsed error carries HTTP 429 and Lambda's reason, as botocore reads AWS's.
    time.sleep(1.1)
    burst(lambda: aws.lam.list_functions(MaxItems=1), 15)
    with pytest.raises(ClientError) as err:
        aws.lam.get_alias(FunctionName=name, Name="live")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert err.value.response["Reason"] == "CallerRateLimitExceeded"
    # GetFunction is outside the limit, as on AWS.
    time.sleep(1.1)
    assert burst(lambda: aws.lam.get_function(FunctionName=name), 30) == [""] * 30


def test_every_call_takes_the_latency(model_server):
    endpoint, aws = model_server
    name = aws.function({"app.py": APP})
    control(endpoint, "POST", latency_s=0.3, update_s=5, limit=15)
    started = time.monotonic()
    aws.lam.get_function(FunctionName=name)
    assert time.monotonic() - started >= 0.3
    control(endpoint, "POST", latency_s=0, update_s=5, limit=15)
    started = time.monotonic()
    aws.lam.get_function(FunctionName=name)
    assert time.monotonic() - started < 0.3


def test_an_update_stays_in_progress_for_the_window_and_refuses_a_second(model_server):
    endpoint, aws = model_server
    name = aws.function({"app.py": APP})
    control(endpoint, "POST", latency_s=0, update_s=1.5, limit=15)
    answer = aws.lam.update_function_configuration(FunctionName=name, MemorySize=512)
    assert answer["LastUpdateStatus"] == "InProgress"
    assert aws.lam.get_function(FunctionName=name)["Configuration"]["LastUpdateStatus"] == (
        "InProgress"
    )
    with pytest.raises(ClientError) as err:
        aws.lam.update_function_configuration(FunctionName=name, MemorySize=1024)
    assert err.value.response["Error"]["Code"] == "ResourceConflictException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    time.sleep(1.6)
    assert aws.lam.get_function(FunctionName=name)["Configuration"]["LastUpdateStatus"] == (
        "Successful"
    )
    # Code with Publish: the new version is InProgress too, until the window ends.
    code = aws.lam.get_function(FunctionName=name)["Code"]
    assert code  # moto keeps the zip: update with the same code again
    published = aws.lam.update_function_code(FunctionName=name, ZipFile=_zip(), Publish=True)
    version = published["Version"]
    assert version != "$LATEST"
    at = aws.lam.get_function(FunctionName=name, Qualifier=version)["Configuration"]
    assert at["LastUpdateStatus"] == "InProgress"
    time.sleep(1.6)
    at = aws.lam.get_function(FunctionName=name, Qualifier=version)["Configuration"]
    assert at["LastUpdateStatus"] == "Successful"
    report = control(endpoint)
    assert report["updates"] >= 2 and report["conflicts"] == 1


def test_invoke_is_modelled_unless_asked_to_run_and_disarmed_is_moto(model_server):
    endpoint, aws = model_server
    name = aws.function({"app.py": APP})
    control(endpoint, "POST", latency_s=0, update_s=0, limit=15)
    _, payload = aws.invoke(name)
    assert payload["statusCode"] == 200  # the model's healthy app, not the code's 500
    control(endpoint, "POST", latency_s=0, update_s=0, limit=15, invoke="run")
    _, payload = aws.invoke(name)
    assert payload == {"statusCode": 500}
    control(endpoint, "DELETE")
    assert burst(lambda: aws.lam.list_functions(MaxItems=1), 30) == [""] * 30
    aws.lam.update_function_configuration(FunctionName=name, MemorySize=256)
    assert aws.lam.get_function(FunctionName=name)["Configuration"]["LastUpdateStatus"] == (
        "Successful"
    )


def _zip() -> bytes:
    from tests.sandbox.test_lambda_common import zip_of

    return zip_of({"app.py": APP.replace("500", "200")})
