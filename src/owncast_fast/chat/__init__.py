"""Chat: sans-I/O core (users, rendering, rate limit, hub) and the service that ties it to the store."""
