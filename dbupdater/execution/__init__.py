"""Running a plan: sessions and ledgers (`pool`), copies (`sessions`), the lease heartbeat, the scheduler,
one executor for both walks (`executor.apply`), one row's step, interrupts and hooks.

Import from the modules themselves: this package stays empty so that the command line, which needs only
`interrupts` to start, does not load the whole run machinery (110 ms) for `--help` or `validate`.
"""
