"""``python -m geossh``: the same as the ``geossh`` console script."""

from __future__ import annotations

import sys

from geossh.runner.cli import main

if __name__ == "__main__":
    sys.exit(main())
