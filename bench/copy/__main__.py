"""``python -m bench.copy``: see ``bench/copy/main.py`` for the options."""

import sys

from .main import main

sys.exit(main())
