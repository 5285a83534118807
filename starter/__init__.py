"""What starts and drives referral workflows from outside: the embedded stack, the demo, later the API and CLI."""
