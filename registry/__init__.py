"""Dockyard: a container image registry (OCI Distribution v1.1, Docker Registry HTTP API v2).

``registry.app.create_app(config)`` builds the ASGI application from a
``registry.config.load_config(path)`` result; ``registry.cli`` is the ``dockyard`` command.
Nothing is imported here, so the command's supervisor process stays small.
"""
