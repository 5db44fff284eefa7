"""notes_app: shipsafe's reference workload (a small notes API on Postgres with a Redis cache)."""
