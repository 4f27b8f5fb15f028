import socket
import subprocess
import sys


def test_run_refuses_a_port_in_use_and_says_which():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "opsconsole.sandbox", "run"],
            env={"PATH": "/usr/bin:/bin", "PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert f"port {port}" in result.stderr
    assert "PORT" in result.stderr


def test_run_stops_what_it_started_when_a_start_up_step_fails(tmp_path):
    """The migrations cannot reach the database: run fails, and the local AWS it had
    already started does not outlive it."""
    import os

    from opsconsole.sandbox import services

    web_port, aws_port, dead_db_port = (services.free_port() for _ in range(3))
    env = dict(os.environ)
    env.update(
        PORT=str(web_port),
        SANDBOX_AWS_PORT=str(aws_port),
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{dead_db_port}/nothing",
    )
    result = subprocess.run(
        [sys.executable, "-m", "opsconsole.sandbox", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "manage.py migrate" in result.stderr
    assert "stopping sandbox AWS" in result.stdout
    assert services.port_free("127.0.0.1", aws_port)


def test_a_machine_without_redis_gets_a_real_embedded_one():
    import redis

    from opsconsole.sandbox import services

    broker = services._embedded_redis(redis_db=3)
    client = redis.Redis.from_url(broker.url)
    # A real server: Lua scripts (the rate budget's) run.
    assert client.eval("return redis.call('INCRBY', KEYS[1], 2)", 1, "launcher-test") == 2
    port = client.connection_pool.connection_kwargs["port"]
    broker.stop()
    assert services.port_free("127.0.0.1", port)
