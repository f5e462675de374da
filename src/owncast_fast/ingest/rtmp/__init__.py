"""RTMP ingest, layered: handshake -> chunk stream -> messages -> session -> server adapter."""
