"""MySQL to PostgreSQL copy speed (issue 22): ``python -m bench.copy``; see ``main.py`` for what it measures."""
