"""Fast unit tests: no rig. A stub engine over SQLite and an in-process transport drive the real core."""
