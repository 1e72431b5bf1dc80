"""Database access: connection pools, the read path's SQL, the migration runner."""
