"""One module per window (after Vorta's views/): Progress, Sources, Search, Backup, Settings."""
