"""Runtime plumbing shared by the worker and the starters: settings, logging, database, Temporal client."""
