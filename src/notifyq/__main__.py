"""``python -m notifyq``."""

from notifyq.cli import main

main()
