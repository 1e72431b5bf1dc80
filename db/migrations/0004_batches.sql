-- One row per committed batch of prices (POST /batches, python -m rates ingest).
-- The row is inserted first thing in the batch's transaction and completed just before its
-- commit, so it exists exactly when the batch's prices do. The unique key makes a concurrent
-- request with the same Idempotency-Key wait for the first one, then see its committed record.
CREATE TABLE public.batches (
    batch_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key          text NOT NULL UNIQUE CHECK (length(key) BETWEEN 1 AND 200),
    -- Filled in by the same transaction before it commits: NULL is never visible to others.
    rows         bigint CHECK (rows > 0),
    sha256       text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    received_at  timestamptz NOT NULL DEFAULT now(),
    committed_at timestamptz,
    duration_ms  bigint CHECK (duration_ms >= 0)
);

COMMENT ON TABLE public.batches IS 'committed price batches; key is the client''s Idempotency-Key';
COMMENT ON COLUMN public.batches.sha256 IS 'sha256 of the decoded batch content (after gzip)';
