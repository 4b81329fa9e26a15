"""Backups: database dumps and content-addressed object copies, verified, drilled, restorable, expired by
policy. Plain Python (no Dagster) so every step can be tested and run from the restore command line."""
