"""Run folders: the record of each run, its files, its lifecycle, its typed summary."""
