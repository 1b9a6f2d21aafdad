"""A big banner between the steps of the bin/ scripts, so each step is easy to find in a long log.

    python -m environment_creators.banner TEXT...
"""

from __future__ import annotations

import shutil
import sys


def banner(text: str) -> str:
    try:
        import pyfiglet
    except ImportError:  # before bin/setup.sh has built the venv
        return f"==== {text} ====\n"
    width = max(shutil.get_terminal_size((100, 24)).columns, 60)
    rendered: str = pyfiglet.figlet_format(text, font="standard", width=width)
    return rendered


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    print(banner(" ".join(words) or "dbupdater"), end="", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
