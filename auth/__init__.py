"""Who is calling: bearer tokens and signed JWTs resolved to a staff member, shared by every HTTP surface."""
