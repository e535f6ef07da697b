"""redalert's own apprise schemas.

``console://`` prints notifications on the notify process's standard output: the target of the
README's demo, and handy when trying rules out. Registered in every process that validates or
sends apprise URLs.
"""

import sys
from typing import Any

from apprise.decorators import notify

_COLOURS = {"failure": "\033[1;31m", "warning": "\033[1;33m", "success": "\033[1;32m"}
_RESET = "\033[0m"
_registered = False


def register() -> None:
    global _registered
    if _registered:
        return
    _registered = True

    @notify(on="console", name="redalert console")
    def _console(body: str, title: str, notify_type: str, *args: Any, **kwargs: Any) -> bool:
        colour = _COLOURS.get(str(notify_type), "") if sys.stdout.isatty() else ""
        reset = _RESET if colour else ""
        sys.stdout.write(f"\n{colour}{title}{reset}\n{body}\n")
        sys.stdout.flush()
        return True
