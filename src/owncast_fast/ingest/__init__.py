"""Stream ingest: protocols that bring a publisher's media into the hub."""
