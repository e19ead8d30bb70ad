"""``python -m notifyq``."""

from notifyq.ops.cli import main

main()
