"""`dalleq`: the command line, the top layer: it imports server, worker and minidalle, and none of
them imports it (the import-linter contracts in pyproject.toml hold each package to its layer)."""
