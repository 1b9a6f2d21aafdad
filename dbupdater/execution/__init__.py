"""Running a plan: the Run and its lifecycle (`run`), what a kind of step is (`kinds`), sessions and ledgers
(`pool`), copies (`sessions`), the lease heartbeat, the scheduler, the walk (`executor`), interrupts and hooks.
The kinds of step themselves are in `dbupdater.steps`.

Import from the modules themselves: this package stays empty so that the command line, which needs only
`interrupts` to start, does not load the whole run machinery (110 ms) for `--help` or `validate`.
"""
