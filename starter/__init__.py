"""What starts and drives referral workflows from outside: the embedded stack, the demo, synthetic data, escalation acknowledgement and process helpers."""
