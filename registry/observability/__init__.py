"""What operators watch: Prometheus metrics, the access and audit logs, health, events.

The package imports nothing here: the supervisor imports ``workers`` before it forks, and
prometheus_client must first be imported in the workers, after the metrics directory is named
(``workers.py``). The application composes the parts through ``compose.Observability``.
"""
