"""owncast-fast: a live-streaming and chat server that speaks Owncast's 0.2.0 API."""

__version__ = "0.1.0"

# The Owncast API version we answer as (`versionNumber` in /api/status and friends).
OWNCAST_API_VERSION = "0.2.0"
