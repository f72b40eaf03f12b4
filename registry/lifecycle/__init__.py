"""The storage lifecycle: garbage collection that is safe while the registry serves, repository
deletion, and retention.

``state`` is the record every process reads, ``guard`` the manifest push's side of the
collection protocol, ``lease`` the one-run-at-a-time lease, ``mark`` and ``sweep`` the run itself
(the protocol is written down in ``sweep``), ``collect`` a whole run, ``repositories`` repository
deletion, ``records`` the tags' push and pull times, ``policy`` and ``retention`` the retention
rules and their application, ``http`` and ``cli`` the ways in.
"""
