"""What GET /metrics adds to the counters of the workers: figures sampled at each scrape.

- ``rates_ready``: 1 when the database answers through the read pool within
  ``READY_TIMEOUT_SECONDS`` (as /readyz, with a shorter wait so that a scrape stays quick), else 0;
- ``rates_data_version``: the data version of the database this replica reads (migration 0002):
  it rises with every committed write, and a replica reading a standby that lags shows it;
- ``rates_batch_timeout_seconds``: the bound of a batch's transaction (BATCH_STATEMENT_TIMEOUT_MS;
  0 = none), to which the age of the oldest open batch is compared.
"""

from __future__ import annotations

from rates.components import Components
from rates.errors import ServiceError
from rates.observability import metrics

READY_TIMEOUT_SECONDS = 0.5
READY = "1 when the database answers through the read pool, else 0"


def sampled(components: Components) -> list[metrics.Sample]:
    reads = components.reads
    samples: list[metrics.Sample] = [
        ("rates_batch_timeout_seconds", "Longest a batch's transaction may run (0: no limit)",
         components.ingestor.limits.statement_timeout_ms / 1000),
    ]
    try:
        reads.ping(READY_TIMEOUT_SECONDS)
        version = reads.data_version()
    except ServiceError:
        return [*samples, ("rates_ready", READY, 0.0)]
    return [*samples, ("rates_ready", READY, 1.0),
            ("rates_data_version", "Data version of the database this replica reads", float(version))]
