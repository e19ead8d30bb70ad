"""The pacing scripts: each one is files of ``lua/`` joined in a fixed order, nothing else.

``lib.lua`` (helpers every script uses) comes first; files that define functions come next, and the
entry script's body last, so each file sees the ``local`` definitions of the files before it. No text
is replaced or generated: what runs in Redis is the files as they read.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

PACE_FILES: Final = ("lib.lua", "layout.lua", "decide.lua", "pace.lua")
RELEASE_FILES: Final = ("lib.lua", "release.lua")
LEASE_FILES: Final = ("lib.lua", "lease.lua")
BUDGET_FILES: Final = ("lib.lua", "budget.lua")


def read(name: str) -> str:
    """One file of ``lua/``."""
    return resources.files("notifyq.pacing").joinpath("lua", name).read_text(encoding="utf-8")


def compose(names: tuple[str, ...]) -> str:
    """The script made of these files, in this order."""
    return "".join(read(name) for name in names)


PACE_LUA: Final = compose(PACE_FILES)
RELEASE_LUA: Final = compose(RELEASE_FILES)
LEASE_LUA: Final = compose(LEASE_FILES)
BUDGET_LUA: Final = compose(BUDGET_FILES)
