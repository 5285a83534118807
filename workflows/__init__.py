"""Workflows: deterministic code only (the referral, its agreed actions, the monthly sample, their models and rules); no I/O."""
