"""The message catalogs, kept as data: built JSON, curated ECS mappings, and their sources."""
