"""The auditors' tools: export and replay histories, reconstruct timelines and past states, reconcile records, sample cases.

Each is a plain async function over a Temporal client, an asyncpg pool or a folder of
exported histories, returning a pydantic model, so the CLI (`audit_app`) and the HTTP API
share them.
"""
