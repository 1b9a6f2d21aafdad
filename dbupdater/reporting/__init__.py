"""Reports of a run: listeners of its events (`dbupdater.events`), the console, the run document and the
notifier among them; none of them is known to the run."""
