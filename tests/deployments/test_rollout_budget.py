"""The shared Lambda rate budget (a token bucket in real Redis), driven by a fake clock."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.conf import settings

from opsconsole.aws.rate_budget import BudgetTimeout, RateBudget, redis_client


class FakeClock:
    """Time that only moves when someone sleeps; shared by several 'workers'."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


@pytest.fixture
def key():
    name = f"test-budget-{uuid.uuid4().hex[:8]}:lambda-control:acct:us-east-1"
    yield name
    redis_client().delete(name)


def budget(key: str, clock: FakeClock, rate=10.0, burst=5.0) -> RateBudget:
    return RateBudget(
        key=key, rate=rate, burst=burst, conn=redis_client(), clock=clock, sleep=clock.sleep
    )


def test_never_more_than_fifteen_in_any_second(key):
    clock = FakeClock()
    # Four workers share one bucket (one Redis key), each with its own RateBudget object.
    workers = [budget(key, clock) for _ in range(4)]
    granted: list[float] = []
    for i in range(400):
        worker = workers[i % 4]
        worker.take(timeout_s=600)
        granted.append(clock())
    granted.sort()
    # Sliding one-second windows over every grant: at most burst + rate = 15.
    assert _worst_second(granted) <= 15
    # And the sustained rate is the budget's, not less: 400 calls take about 39.5 s.
    elapsed = granted[-1] - granted[0]
    assert 39.0 <= elapsed <= 40.5


def test_a_deadline_gives_the_worker_back(key):
    clock = FakeClock()
    b = budget(key, clock, rate=1.0, burst=1.0)
    b.take()
    with pytest.raises(BudgetTimeout):
        b.take(timeout_s=0.5)


def test_budget_refills_only_to_its_burst(key):
    clock = FakeClock()
    b = budget(key, clock)
    clock.sleep(3600)
    taken = 0
    while b.try_take() == 0:
        taken += 1
    assert taken == 5
    assert settings.LAMBDA_CONTROL_RATE == 10 and settings.LAMBDA_CONTROL_BURST == 5


def test_deploy_path_takes_from_the_budget(monkeypatch):
    from deployments import pipeline

    calls = []

    class Recorder:
        def take(self, *, timeout_s):
            calls.append(timeout_s)

    monkeypatch.setattr(pipeline, "budget_for", lambda region: Recorder())
    pipeline.control("us-east-1")
    assert calls == [settings.LAMBDA_BUDGET_WAIT_S]


def test_a_waiting_worker_books_its_token_in_one_call(key):
    """No polling: a take that must wait asks Redis once and sleeps until its slot."""
    clock = FakeClock()
    b = budget(key, clock, rate=10.0, burst=1.0)
    calls = []
    reserve = b._reserve
    b._reserve = lambda **kw: calls.append(kw) or reserve(**kw)
    b.take()  # the burst token: no wait
    waits = [b.take() for _ in range(5)]
    assert len(calls) == 6
    assert waits == pytest.approx([0.1] * 5, abs=0.002)


def test_a_worker_that_wakes_late_lets_its_token_go_and_books_again(key):
    """Calls must go out close to their tokens' times, or they bunch into one second."""
    clock = FakeClock()
    late_once = {"done": False}

    def oversleep(seconds: float) -> None:
        # The first sleep overruns by 0.3 s (a busy machine); later ones are exact.
        clock.sleep(seconds + (0.3 if not late_once["done"] else 0.0))
        late_once["done"] = True

    b = RateBudget(key=key, rate=10.0, burst=1.0, conn=redis_client(), clock=clock, sleep=oversleep)
    b.try_take()  # the bucket is empty: the next token is due in 0.1 s
    waited = b.take(timeout_s=10)
    assert b.late == 1  # the overslept token was let go
    # 0.1 s booked + 0.3 s late, then a fresh booking used on time.
    assert waited == pytest.approx(0.4 + 0.0, abs=0.11)
    on_time = RateBudget(
        key=key, rate=10.0, burst=1.0, conn=redis_client(), clock=clock, sleep=clock.sleep
    )
    on_time.take(timeout_s=10)
    assert on_time.late == 0


def _granted_by_processes(key: str, *, max_late: float) -> tuple[list[float], int]:
    """Four real processes share one bucket (rate 20/s, burst 5) at real time, with late
    a one-second stall of the whole machine 1.5 s in; returns every grant's time and how
    many late tokens were let go."""
    import subprocess
    import sys
    import time

    url = settings.RATE_BUDGET_REDIS_URL
    argv = [sys.executable, "-m", "tests.deployments.budget_child", url, key, "25", "20", "5"]
    stall_at = time.time() + 1.5  # the children start well within that
    procs = [
        subprocess.Popen([*argv, str(max_late), repr(stall_at)], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    granted: list[float] = []
    late = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        for line in out.splitlines():
            if line.startswith("late "):
                late += int(line.split()[1])
            else:
                granted.append(float(line))
    return sorted(granted), late


def _worst_second(granted: list[float]) -> int:
    """The most grants in any one-second window (``granted`` sorted)."""
    start = worst = 0
    for end, t in enumerate(granted):
        while granted[start] <= t - 1.0:
            start += 1
        worst = max(worst, end - start + 1)
    return worst


def test_the_budget_holds_across_real_processes_that_wake_late(key):
    granted, late = _granted_by_processes(key, max_late=0.05)
    assert len(granted) == 100
    # At most burst + rate = 25 calls in any one second of real time, the stall and all:
    # the workers it woke late let their tokens go (late > 0) instead of sending them
    # with the next second's.
    assert late > 0
    assert _worst_second(granted) <= 25
    # And the budget is spent, not wasted: 100 tokens at 20/s after a burst of 5 take
    # about 4.75 s; the stall and the let-go tokens cost about a second more.
    assert granted[-1] - granted[0] < 7.5


def test_late_tokens_used_anyway_break_the_limit(key):
    """The check above can fail: a budget that uses tokens however late it wakes sends
    them in clumps, more than the limit in one second."""
    granted, late = _granted_by_processes(key, max_late=10.0)
    assert late == 0
    assert _worst_second(granted) > 25


def test_a_budget_whose_redis_is_down_says_so_and_the_step_tries_again(monkeypatch):
    import redis

    from deployments import pipeline
    from opsconsole.aws.rate_budget import BudgetUnavailable
    from opsconsole.jobs.registry import StepTransient, is_transient

    dead = RateBudget(key="k", rate=10, burst=5, conn=redis.Redis.from_url("redis://127.0.0.1:1/0"))
    with pytest.raises(BudgetUnavailable) as raised:
        dead.take(timeout_s=1)
    assert is_transient(raised.value)
    monkeypatch.setattr(pipeline, "budget_for", lambda region: dead)
    with pytest.raises(StepTransient, match="Redis does not answer"):
        pipeline.control("us-east-1")
