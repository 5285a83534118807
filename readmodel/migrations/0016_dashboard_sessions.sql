-- The dashboard's signed-in sessions: the browser holds a random session ID, this table only its
-- SHA-256, so neither a copy of the table nor a log of it lets anyone sign in. Signing out revokes.

CREATE TABLE dashboard_sessions (
    id_hash     bytea PRIMARY KEY CHECK (octet_length(id_hash) = 32),
    actor_id    text NOT NULL,
    actor_role  text NOT NULL,
    agency      text NOT NULL,
    rank        text,
    team        text,
    -- Every form of the session carries it; a post without it is refused (cross-site request forgery).
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX dashboard_sessions_expires_idx ON dashboard_sessions (expires_at);
