"""The fault drills' table, printed once at the end of the test run."""

from __future__ import annotations

import statistics


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    from tests.faults.drill import ROWS

    if not ROWS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fault drills")
    header = ("scenario", "runs", "tenants", "lost", "duplicated", "stuck", "ran twice")
    write(
        f"{header[0]:<28}{header[1]:>5}{header[2]:>9}{header[3]:>6}{header[4]:>12}"
        f"{header[5]:>7}{header[6]:>11}  time to converge (median / max)"
    )
    for row in ROWS:
        median = statistics.median(row.converge_s) if row.converge_s else 0
        worst = max(row.converge_s, default=0)
        write(
            f"{row.scenario:<28}{row.runs:>5}{row.tenants:>9}{row.lost:>6}{row.duplicated:>12}"
            f"{row.stuck:>7}{row.ran_twice:>11}  {median:.0f} s / {worst:.0f} s"
        )
        for problem in row.problems[:10]:
            write(f"    {problem}")
