"""rsoptctl: the command-line client of rsoptd (standard library only)."""
