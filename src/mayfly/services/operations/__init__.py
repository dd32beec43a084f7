"""What operators run: account administration, backups, housekeeping, the shared platform key."""
