"""bench sandbox_traffic: real demo apps behind real HTTP APIs on the local AWS, driven by
concurrent clients; what the sandbox adds on top of the app's own time.

Set-up (boto3 straight at the local AWS, not the console's onboarding: this measures the
local AWS, not the console): a local AWS of its own on a free port, and ``--tenants``
tenants, each with a database and login role of its own on the local PostgreSQL
(SANDBOX_PG_HOST/PORT/USER/PASSWORD), the demo release's migration applied, its
credentials in a Secrets Manager secret, an IAM role, the demo release ``2026.11.0-demo``
as a zip function with a published version and alias ``live``, and an HTTP API whose
``$default`` route integrates with the alias (payload 2.0) with the permission to invoke it.

Then ``--clients`` threads (20) send requests for ``--seconds`` (30) through the APIs'
URLs (``<endpoint>/_aws/execute-api/<api-id>/...``, keep-alive connections), as users of
one tenant each (client i of tenant i mod N, so each tenant sees clients/N requests at
once), each request ``GET /notes`` (half), ``GET /healthz`` (three in ten) or
``POST /notes`` (two in ten). Latency is measured at the client. Before that, one request
per tenant finds each function cold: ``cold_start_ms`` is the median of those requests'
client latency; ``init_ms`` the median Init Duration of their REPORT lines.

``handler_p50_ms`` is the median REPORT Duration of the warm invocations (the app's own
time, database included). Twenty clients on two cores keep the machine saturated, so their
latency is mostly the queue (about clients / rps); what the sandbox itself adds to a request
is measured after, with one client alone for ``--solo-seconds`` (5):
``solo_overhead_p50_ms`` = that client's p50 minus those invocations' median Duration (the
HTTP API, the invoke, the Runtime API hand-off to the worker process and back). The CPU
line splits the measured part's CPU time between the local AWS server, the function
environments, PostgreSQL and the rest of the machine. ``errors`` counts 5xx answers and
requests without an answer.

    python bench/sandbox_traffic.py [--tenants 10] [--clients 20] [--seconds 30]

The last line is the summary: ``bench sandbox_traffic: tenants=N requests=N rps=N p50_ms=N
p95_ms=N cold_start_ms=N errors=N handler_p50_ms=N solo_p50_ms=N solo_overhead_p50_ms=N
init_ms=N``. Databases and roles (``bench_traffic_*``) are dropped at the end and at the start.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3  # noqa: E402
import psycopg  # noqa: E402
from botocore.config import Config  # noqa: E402
from psycopg import sql  # noqa: E402

from opsconsole.sandbox import demo_release, services  # noqa: E402

PREFIX = "bench_traffic_"
REGION = "us-east-1"
ACCOUNT = "123456789012"
USER_AGENT = "opsconsole-bench-sandbox-traffic"
_DURATION = re.compile(r"\tDuration: ([\d.]+) ms")
_INIT = re.compile(r"Init Duration: ([\d.]+) ms")


# --- the local PostgreSQL ---------------------------------------------------------------


def _pg() -> dict:
    return {
        "host": os.environ.get("SANDBOX_PG_HOST", "127.0.0.1"),
        "port": int(os.environ.get("SANDBOX_PG_PORT", "5432")),
        "user": os.environ.get("SANDBOX_PG_USER", "postgres"),
        "password": os.environ.get("SANDBOX_PG_PASSWORD") or None,
    }


def _admin() -> psycopg.Connection:
    pg = _pg()
    return psycopg.connect(
        host=pg["host"],
        port=pg["port"],
        user=pg["user"],
        password=pg["password"],
        dbname="postgres",
        autocommit=True,
    )


def _drop_databases() -> None:
    with _admin() as conn:
        names = [
            name
            for (name,) in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", [PREFIX + "%"]
            )
        ]
        for name in names:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                [name],
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        for (role,) in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", [PREFIX + "%"]
        ).fetchall():
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _tenant_database(name: str, demo: demo_release.DemoRelease) -> dict:
    """A database owned by a login role of its own, migrated; its credentials."""
    password = uuid.uuid4().hex
    pg = _pg()
    with _admin() as conn:
        verifier = conn.pgconn.encrypt_password(
            password.encode(), name.encode(), b"scram-sha-256"
        ).decode()
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(verifier)
            )
        )
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(*[sql.Identifier(name)] * 2))
    with psycopg.connect(
        host=pg["host"], port=pg["port"], user=name, password=password, dbname=name
    ) as conn:
        for migration in demo.migrations:
            conn.execute(migration.sql)
        for n in range(20):
            conn.execute("INSERT INTO notes (text) VALUES (%s)", [f"seed note {n}"])
    return {
        "engine": "postgres",
        "host": pg["host"],
        "port": pg["port"],
        "dbname": name,
        "username": name,
        "password": password,
    }


# --- the local AWS ----------------------------------------------------------------------


def _client(endpoint: str, service: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(retries={"mode": "standard"}, read_timeout=120, max_pool_connections=32),
    )


def _tenant_stack(endpoint: str, n: int, demo: demo_release.DemoRelease) -> dict:
    """One tenant's database, secret, role, function, alias and HTTP API."""
    name = f"{PREFIX}{n:02d}"
    function = f"bench-traffic-{n:02d}"
    credentials = _tenant_database(name, demo)
    sm, iam = _client(endpoint, "secretsmanager"), _client(endpoint, "iam")
    lam, apigw = _client(endpoint, "lambda"), _client(endpoint, "apigatewayv2")
    secret = sm.create_secret(
        Name=f"bench-traffic/{n:02d}/db", SecretString=json.dumps(credentials)
    )
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName=function, AssumeRolePolicyDocument=json.dumps(trust))
    lam.create_function(
        FunctionName=function,
        Runtime=demo.runtime,
        Role=role["Role"]["Arn"],
        Handler=demo.handler,
        Code={"ZipFile": demo.zip_bytes},
        MemorySize=256,
        Timeout=30,
        Environment={"Variables": {"DB_SECRET_ARN": secret["ARN"]}},
    )
    version = lam.publish_version(FunctionName=function)["Version"]
    alias = lam.create_alias(FunctionName=function, Name="live", FunctionVersion=version)
    api = apigw.create_api(Name=function, ProtocolType="HTTP")
    integration = apigw.create_integration(
        ApiId=api["ApiId"],
        IntegrationType="AWS_PROXY",
        IntegrationUri=alias["AliasArn"],
        PayloadFormatVersion="2.0",
    )
    apigw.create_route(
        ApiId=api["ApiId"],
        RouteKey="$default",
        Target=f"integrations/{integration['IntegrationId']}",
    )
    apigw.create_stage(ApiId=api["ApiId"], StageName="$default", AutoDeploy=True)
    lam.add_permission(
        FunctionName=function,
        Qualifier="live",
        StatementId=f"apigw-{api['ApiId']}",
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api['ApiId']}/*/*",
    )
    return {"function": function, "url": api["ApiEndpoint"]}


# --- clients ----------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP connection to the local AWS."""

    def __init__(self, endpoint: str) -> None:
        parts = urlsplit(endpoint)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, url: str, body: bytes | None = None) -> tuple[int | None, float]:
        path = urlsplit(url).path
        headers = {"User-Agent": USER_AGENT}
        if body is not None:
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                answer = self.conn.getresponse()
                answer.read()
                if answer.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return answer.status, (time.perf_counter() - started) * 1000
            except (OSError, http.client.HTTPException):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt:
                    break
                started = time.perf_counter()  # a stale keep-alive connection: once more
        return None, (time.perf_counter() - started) * 1000


def _pick(rng: random.Random) -> tuple[str, str, bytes | None]:
    roll = rng.random()
    if roll < 0.5:
        return "GET", "/notes", None
    if roll < 0.8:
        return "GET", "/healthz", None
    return "POST", "/notes", json.dumps({"text": f"bench {rng.random():.6f}"}).encode()


def _drive(endpoint: str, tenants: list[dict], *, clients: int, seconds: float) -> list[tuple]:
    results: list[tuple] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(seed: int) -> None:
        # Client i is a user of tenant i mod N: every tenant sees clients/N at once.
        tenant = tenants[seed % len(tenants)]
        rng, client, mine = random.Random(seed), Client(endpoint), []
        while time.monotonic() < deadline:
            method, path, body = _pick(rng)
            status, ms = client.request(method, tenant["url"] + path, body)
            mine.append((tenant["function"], method, path, status, ms))
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _reports(endpoint: str, function: str, *, since_ms: int = 0, until_ms: int = 0) -> list[str]:
    """The function's REPORT lines written between ``since_ms`` and ``until_ms``."""
    logs = _client(endpoint, "logs")
    lines, token = [], None
    while True:
        kwargs = {"logGroupName": f"/aws/lambda/{function}", "filterPattern": "REPORT"}
        if since_ms:
            kwargs.update(startTime=since_ms, endTime=until_ms or int(time.time() * 1000) + 1)
        if token:
            kwargs["nextToken"] = token
        page = logs.filter_log_events(**kwargs)
        lines += [e["message"] for e in page["events"] if e["message"].startswith("REPORT")]
        token = page.get("nextToken")
        if not token:
            return lines


def _cpu_seconds(pgid: int) -> dict[str, dict[int, float]]:
    """CPU seconds so far, by process, of the local AWS server, its function environments
    and the PostgreSQL server's processes; and of the whole machine (pid 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    spent: dict[str, dict[int, float]] = {"server": {}, "environments": {}, "postgres": {}}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            name, rest = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = rest.split()
        used = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        pid = int(entry)
        if int(fields[2]) == pgid:  # the process group, 5th field of stat
            spent["server" if pid == pgid else "environments"][pid] = used
        elif name.endswith("(postgres"):
            spent["postgres"][pid] = used
    machine = sum(int(v) for v in Path("/proc/stat").read_text().split()[1:4]) / tick
    spent["machine"] = {0: machine}
    spent["clients"] = {os.getpid(): sum(os.times()[:2])}
    return spent


def _cpu_used(before: dict, after: dict) -> dict[str, float]:
    """What each part used between two snapshots (processes that ended meanwhile are not
    counted; ones that started are counted whole)."""
    return {
        part: sum(used - before[part].get(pid, 0.0) for pid, used in after[part].items())
        for part in after
    }


def _measure(endpoint: str, tenants: list[dict], server_pid: int, *, clients: int, seconds: float):
    """(results, warm REPORT durations, init durations, CPU seconds by part, wall seconds)
    of ``clients`` clients for ``seconds``."""
    since_ms = int(time.time() * 1000) + 1
    cpu_before = _cpu_seconds(server_pid)
    started = time.perf_counter()
    results = _drive(endpoint, tenants, clients=clients, seconds=seconds)
    wall = time.perf_counter() - started
    cpu_after = _cpu_seconds(server_pid)
    # An invocation's REPORT is written when it ends: within the phase, every one it sent.
    until_ms = int(time.time() * 1000)
    reports = [
        line
        for t in tenants
        for line in _reports(endpoint, t["function"], since_ms=since_ms, until_ms=until_ms)
    ]
    warm = [
        float(m.group(1)) for r in reports if not _INIT.search(r) and (m := _DURATION.search(r))
    ]
    inits = [float(m.group(1)) for r in reports if (m := _INIT.search(r))]
    cpu = _cpu_used(cpu_before, cpu_after)
    return results, warm, inits, cpu, wall


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument(
        "--warmup", type=float, default=10, help="seconds of the same load first, not counted"
    )
    parser.add_argument(
        "--solo-seconds", type=float, default=5, help="then one client alone, this long"
    )
    args = parser.parse_args()

    demo = demo_release.build_demo_release()
    _drop_databases()
    port = services.free_port()
    state = tempfile.mkdtemp(prefix="bench-sandbox-traffic-")
    os.environ["LOCALAWS_STATE_DIR"] = state
    log_path = Path(state) / "localaws.log"
    server = services.start_local_aws(port=port, log_path=log_path)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            tenants = list(
                pool.map(lambda n: _tenant_stack(endpoint, n, demo), range(args.tenants))
            )
        print(f"set-up: {args.tenants} tenants in {time.perf_counter() - started:.1f} s")

        # Each function's first request: a cold start (one tenant at a time, nothing else
        # running, so the figure is the start itself and not the machine's queue).
        cold = []
        for tenant in tenants:
            status, ms = Client(endpoint).request("GET", tenant["url"] + "/healthz")
            if status != 200:
                raise SystemExit(f"{tenant['function']}: first request answered {status}")
            cold.append(ms)
        cold_inits = [
            float(m.group(1))
            for t in tenants
            for r in _reports(endpoint, t["function"])
            if (m := _INIT.search(r))
        ]

        # The same load for a while first: every environment the load needs is started
        # (each a cold start of its own) before the measured part.
        warmup = _drive(endpoint, tenants, clients=args.clients, seconds=args.warmup)
        results, warm, inits, cpu, wall = _measure(
            endpoint, tenants, server.pid, clients=args.clients, seconds=args.seconds
        )
        # One client alone: latency without a queue, what the sandbox adds to each request.
        solo, solo_warm, _, _, _ = _measure(
            endpoint, tenants, server.pid, clients=1, seconds=args.solo_seconds
        )
    finally:
        services.stop_process(server)
        _drop_databases()

    latencies = [ms for *_, status, ms in results if status is not None]
    errors = sum(1 for *_, status, _ms in results if status is None or status >= 500)
    statuses: dict[str, int] = {}
    for *_, status, _ms in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    p50, p95 = _percentile(latencies, 0.5), _percentile(latencies, 0.95)
    handler_p50 = statistics.median(warm) if warm else 0.0
    solo_p50 = _percentile([ms for *_, status, ms in solo if status is not None], 0.5)
    solo_handler_p50 = statistics.median(solo_warm) if solo_warm else 0.0
    n = max(1, len(results))
    others = cpu["machine"] - cpu["server"] - cpu["environments"] - cpu["postgres"]
    print(
        f"warm-up: {len(warmup)} requests; measured: statuses {dict(sorted(statuses.items()))}, "
        f"{len(warm)} warm invocations and {len(inits)} cold starts reported"
    )
    print(
        f"CPU over the measured {wall:.0f} s ({os.cpu_count()} cores, {2 * wall:.0f} s in all): "
        f"local AWS server {cpu['server']:.1f} s, function environments "
        f"{cpu['environments']:.1f} s, PostgreSQL {cpu['postgres']:.1f} s, these clients "
        f"{cpu['clients']:.1f} s, everything else on the machine "
        f"{max(0.0, others - cpu['clients']):.1f} s; per request: server "
        f"{cpu['server'] / n * 1000:.2f} ms, environment {cpu['environments'] / n * 1000:.2f} "
        f"ms, PostgreSQL {cpu['postgres'] / n * 1000:.2f} ms"
    )
    print(
        f"client p99 {_percentile(latencies, 0.99):.1f} ms; handler p95 "
        f"{_percentile(warm, 0.95):.1f} ms; cold starts {', '.join(f'{c:.0f}' for c in cold)} ms; "
        f"one client alone: {len(solo)} requests, p50 {solo_p50:.1f} ms, handler p50 "
        f"{solo_handler_p50:.1f} ms"
    )
    print(
        f"bench sandbox_traffic: tenants={args.tenants} requests={len(results)} "
        f"rps={len(results) / wall:.0f} p50_ms={p50:.1f} p95_ms={p95:.1f} "
        f"cold_start_ms={statistics.median(cold):.0f} errors={errors} "
        f"handler_p50_ms={handler_p50:.1f} solo_p50_ms={solo_p50:.1f} "
        f"solo_overhead_p50_ms={solo_p50 - solo_handler_p50:.1f} "
        f"init_ms={statistics.median(cold_inits) if cold_inits else 0:.0f}"
    )


if __name__ == "__main__":
    main()
