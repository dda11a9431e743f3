"""`damai run`'s restart backoff and the reason it prints for a dead process."""

from __future__ import annotations

import signal

from cli.supervise import RestartBackoff, exit_reason
from infra.settings import RunSettings

SETTINGS = RunSettings(restart_initial_s=1.0, restart_max_s=8.0, healthy_after_s=30.0)


def test_the_wait_doubles_up_to_the_longest_when_a_process_keeps_dying():
    backoff = RestartBackoff(SETTINGS)

    waits = [backoff.after_exit(uptime_s=2.0) for _ in range(6)]

    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_the_wait_is_the_shortest_again_when_the_process_had_stayed_up_long_enough():
    backoff = RestartBackoff(SETTINGS)
    for _ in range(4):
        backoff.after_exit(uptime_s=2.0)

    assert backoff.after_exit(uptime_s=30.0) == 1.0
    assert backoff.after_exit(uptime_s=2.0) == 2.0


def test_the_wait_never_exceeds_the_longest_when_the_first_is_longer():
    backoff = RestartBackoff(RunSettings(restart_initial_s=60.0, restart_max_s=30.0))

    assert backoff.after_exit(uptime_s=0.0) == 30.0


def test_the_reason_names_the_signal_when_a_signal_killed_the_process():
    assert exit_reason(-signal.SIGKILL) == "was killed by SIGKILL"


def test_the_reason_gives_the_exit_code_when_the_process_exited():
    assert exit_reason(3) == "exited with code 3"
