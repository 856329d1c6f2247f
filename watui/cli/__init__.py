"""The command line: ``watui`` and its subcommands (a contract for scripts: keep names, codes)."""
