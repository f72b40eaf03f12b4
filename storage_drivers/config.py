"""What a driver's constructor from configuration takes and raises."""

from collections.abc import Mapping
from typing import Any

Parameters = Mapping[str, Any]
"""The driver's section of the configuration, e.g. the mapping under ``storage.s3``."""


class DriverConfigError(ValueError):
    """The driver's parameters are unusable; ``problems`` lists every one of them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
