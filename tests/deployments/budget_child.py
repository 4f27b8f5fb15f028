"""One 'worker' process of the real-concurrency budget test: takes tokens from the shared
bucket at real time and prints when each call would go out (epoch seconds, one per line).

At ``stall_at`` the whole machine stalls for a second (a VM pause, a swap storm): every
worker whose sleep would end inside the stall wakes at its end, late. The budget must then
let those tokens go and book again rather than send them with the next second's calls.
"""

from __future__ import annotations

import sys
import time

import redis

from opsconsole.aws.rate_budget import RateBudget


def main(
    url: str, key: str, count: int, rate: float, burst: float, max_late: float, stall_at: float
) -> None:
    def sleep(seconds: float) -> None:
        wake = time.time() + seconds
        if stall_at <= wake < stall_at + 1.0:
            wake = stall_at + 1.0
        time.sleep(max(0.0, wake - time.time()))

    budget = RateBudget(
        key=key,
        rate=rate,
        burst=burst,
        conn=redis.Redis.from_url(url),
        sleep=sleep,
        max_late_s=max_late,
    )
    for _ in range(count):
        budget.take(timeout_s=60)
        print(repr(time.time()), flush=True)
    print(f"late {budget.late}", flush=True)


if __name__ == "__main__":
    url, key, count, rate, burst, max_late, stall_at = sys.argv[1:]
    main(url, key, int(count), float(rate), float(burst), float(max_late), float(stall_at))
