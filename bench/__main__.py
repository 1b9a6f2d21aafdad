"""``python -m bench``: see ``bench/settings.py`` for the options."""

import sys

from .main import main

sys.exit(main())
