"""The `referrals` command line: the staff commands over the HTTP API and the auditors' commands."""
