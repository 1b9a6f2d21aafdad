"""Reports of a run, behind one event protocol (`events`); the console is one of them."""
