"""Command-line options shared by the twistd plugins and scepadm."""

from __future__ import annotations

import sys
from typing import Any

from twisted.python import usage


class OneLineErrors(usage.Options):
    """Options whose usage errors are one line on stderr and exit status 2."""

    command = "scep"

    def parseOptions(self, options: Any = None) -> None:
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            print(f"{self.command}: {e}", file=sys.stderr)
            raise SystemExit(2) from None
