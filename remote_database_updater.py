#!/usr/bin/env python3
"""Apply a manifest of SQL scripts through runner hosts. See `--help`; the work is in the dbupdater package."""

import sys

from dbupdater.cli import main

if __name__ == "__main__":
    sys.exit(main())
