"""Apply SQL scripts to databases through runner hosts, the same way in every environment tier."""

__version__ = "0.2.0"
