"""Viewers, hardware and playback metrics, Prometheus exposition and the admin log ring.

Each concern is a sans-I/O core (`viewers`, `hardware`, `playback`, `logs`, `prometheus`) that
takes `now` and values in; `service.MetricsService` wires them to the clock, the event bus, the
store and psutil, and runs their periodic jobs.
"""
