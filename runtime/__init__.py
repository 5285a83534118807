"""Runtime plumbing shared by the worker and the starters: settings, logging, the Temporal connection, the payload codec and decision proofs."""
