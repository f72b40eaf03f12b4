"""Webhook notifications: Distribution's ``notifications`` section, events and envelope, with
durable queues.

``layer`` sees what each manifest and blob request did and makes Distribution's events of it
(``events``); ``notifier`` queues them for every endpoint, in storage or in a local directory
(``queue``), before a write is answered; ``deliver`` posts each endpoint's queue in order, from
one process at a time, and drops the oldest past the endpoint's bound.
"""

from .notifier import Notifier

__all__ = ["Notifier"]
