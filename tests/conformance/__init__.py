"""One behaviour suite every registered engine runs (issue 18), each against its peer (see peers.py)."""
