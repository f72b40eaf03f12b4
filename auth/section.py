"""How auth reads its sections: the shared ``Section`` reader, and the error that lists every
problem of an unusable auth configuration.

Readers record problems instead of raising, so start-up lists every problem at once; the
caller raises ``AuthConfigError(problems)`` at the end.
"""

from __future__ import annotations

from config_reader import Section

__all__ = ["AuthConfigError", "Section"]


class AuthConfigError(ValueError):
    """The auth configuration is unusable; ``problems`` lists every issue found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
