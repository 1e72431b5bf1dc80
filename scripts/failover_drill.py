#!/usr/bin/env python3
"""Failover drill on the running HA stack (`make up-ha` first): under a steady load (reads
through HAProxy at a fixed rate, small batches one after another), kill the primary with
SIGKILL, wait for Patroni to promote a synchronous standby, start the old primary again and wait
until it follows the new one. Prints what clients saw: the write gap, failed reads, lost
batches (always checked: none may be lost), and how long each step took.

HA_PROJECT and the HA_*_PORT variables select the stack, as for `make up-ha`.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.ha import HaStack, Traffic, check_no_loss, node_state, wait_until  # noqa: E402


def stack_from_environment() -> HaStack:
    env = os.environ
    return HaStack(project=env.get("HA_PROJECT", "rates-ha"), api_port=int(env.get("HA_API_PORT", "3300")),
                   write_port=int(env.get("HA_DB_WRITE_PORT", "5500")),
                   read_port=int(env.get("HA_DB_READ_PORT", "5501")), stats_port=int(env.get("HA_STATS_PORT", "8404")))


def drill(stack: HaStack) -> dict[str, float]:
    """One primary kill under load; the figures of what clients saw."""
    primary = wait_until(stack.leader, 30, "a primary")
    baseline = node_state(stack, primary)[0]  # type: ignore[arg-type]
    with Traffic(stack, f"drill-{uuid.uuid4().hex[:6]}") as traffic:
        time.sleep(2)
        killed = time.monotonic()
        stack.kill(primary)  # type: ignore[arg-type]
        new = wait_until(lambda: stack.new_leader(primary), 90, "a new primary", every=0.2)  # type: ignore[arg-type]
        promoted = time.monotonic() - killed
        time.sleep(4)
    check_no_loss(stack, traffic, baseline, nodes=tuple(n for n in stack.nodes if n != primary))
    started = time.monotonic()
    stack.start(primary)  # type: ignore[arg-type]
    wait_until(lambda: (stack.role(primary) or ("", ""))[1] == "streaming", 180, f"{primary} streaming again")
    rejoined = time.monotonic() - started
    check_no_loss(stack, traffic, baseline)
    gaps = traffic.write_gaps()
    # The client side of the gap: from the promotion seen by Patroni (polled every 0.2 s) to the
    # acknowledgement of the first batch that had failed.
    after = [b.acknowledged_at - killed - promoted for b in traffic.acknowledged() if b.first_failure is not None]
    return {"old": primary, "new": new, "promoted_s": promoted, "write_gap_s": max(gaps, default=0.0),
            "first_ack_s": min(after, default=float("nan")),
            "reads": len(traffic.reads), "failed_reads": len(traffic.failed_reads()),
            "batches": len(traffic.acknowledged()), "rejoin_s": rejoined}


def main() -> int:
    stack = stack_from_environment()
    if not stack.members():
        sys.exit(f"no HA stack answers in project {stack.project}: run `make up-ha` first")
    figures = drill(stack)
    print(f"\nfailover drill: {figures['old']} killed, {figures['new']} promoted after {figures['promoted_s']:.1f} s")
    print(f"  write gap (first failed batch to its acknowledgement): {figures['write_gap_s']:.1f} s")
    print(f"  first batch acknowledged {figures['first_ack_s']:.1f} s after the promotion")
    print(f"  reads: {figures['reads']}, failed: {figures['failed_reads']}")
    print(f"  batches acknowledged: {figures['batches']}, lost: 0 (checked on every node)")
    print(f"  {figures['old']} back as a streaming replica {figures['rejoin_s']:.1f} s after it was started")
    return 0


if __name__ == "__main__":
    sys.exit(main())
