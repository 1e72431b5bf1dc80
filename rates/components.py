"""The composition root: every long-lived part of the service, built once from the settings.

The WSGI app (rates.api.app), the batch routes and ``python -m rates ingest`` all take their
pools, cache and ingestor from here. Nothing connects until first use (after the server forked
its workers), so building is cheap and the service starts while the database is down.
"""

from __future__ import annotations

from dataclasses import dataclass

from rates.batches.ingest import Ingestor, Limits
from rates.config import Settings
from rates.db.pools import BatchPools, ReadPool
from rates.reads.service import RatesService


@dataclass
class Components:
    settings: Settings
    reads: ReadPool
    batch_pools: BatchPools
    rates: RatesService
    ingestor: Ingestor

    @classmethod
    def build(cls, settings: Settings) -> Components:
        reads = ReadPool(settings)
        batch_pools = BatchPools(settings)
        limits = Limits(settings.BATCH_MAX_ROWS, settings.BATCH_MAX_BYTES, settings.BATCH_STATEMENT_TIMEOUT_MS)
        return cls(
            settings=settings,
            reads=reads,
            batch_pools=batch_pools,
            rates=RatesService(reads, settings.RATES_CACHE_SIZE),
            ingestor=Ingestor(batch_pools, limits),
        )

    def close(self) -> None:
        self.reads.close()
        self.batch_pools.close()
