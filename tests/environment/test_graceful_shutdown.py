"""Stopping the API container (SIGTERM) lets every in-flight request finish, then exits 0."""

from __future__ import annotations

import threading

from tests.inflight import requests_in_flight


def test_in_flight_requests_complete_when_the_api_container_stops(stack):
    stopper = threading.Thread(target=lambda: stack.compose("stop", "--timeout", "40", "api"))
    try:
        # Four requests: at least one is running in the database (held by a lock), the others
        # may be queued in the server (a worker per core, two application threads each).
        with requests_in_flight(stack.conninfo(), stack.api_url, count=4, min_waiting=1) as results:
            stopper.start()
        stopper.join(timeout=60)
        assert len(results) == 4
        for result in results:
            assert not isinstance(result, Exception), result
            status, body = result
            assert status == 200 and len(body["rates"]) == 3
        state = stack.inspect("api")["State"]
        assert state["Status"] == "exited" and state["ExitCode"] == 0
    finally:
        stack.compose("start", "api")
        stack.wait_healthy("api")  # leave the stack as the other tests expect it
