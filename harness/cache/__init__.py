"""The content-addressed run cache (runs) and the atomic, checksummed files under it (store)."""
