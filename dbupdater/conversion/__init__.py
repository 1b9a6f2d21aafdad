"""Copies across engines (MySQL to PostgreSQL): the source's catalog, the translation, the row and checksum
expressions. Text in, text out; it imports only `model/`. See docs/mysql-to-postgresql.md."""
