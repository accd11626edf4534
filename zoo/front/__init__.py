"""The front ends: the `zoo` command line (cli), results tables (bench) and new-plugin packages (scaffold)."""
