#!/usr/bin/env python3
"""Run one SQL script through one runner host. See `--help`; the work is in the dbupdater package."""

import sys

from dbupdater.cli.single import main

if __name__ == "__main__":
    sys.exit(main())
