"""The HTTP layer: routing, request parsing and responses. It never builds a storage path."""
