"""``python -m auth COMMAND``: the same commands as ``dockyard token-server`` and friends."""

from .cli import main

main()
