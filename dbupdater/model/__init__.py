"""The domain model: what a manifest describes and what a run produced, as plain data.

It imports nothing else of the package, so the manifest reader, engines, transports, the ledger and reports
can all share it without depending on each other.
"""
