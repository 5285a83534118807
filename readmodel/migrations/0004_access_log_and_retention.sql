-- Who read which referral's details, when and through what; and each retention purge.
-- Neither table holds personal data: references, staff identifiers and counts only.

CREATE TABLE access_log (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    actor_id      text NOT NULL,
    actor_role    text NOT NULL,
    actor_agency  text NOT NULL,
    channel       text NOT NULL CHECK (channel IN ('api', 'cli', 'dashboard', 'codec_server', 'audit')),
    action        text NOT NULL,
    reference     text,
    detail        jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX access_log_reference_idx ON access_log (reference, at);
CREATE INDEX access_log_actor_idx ON access_log (actor_id, at);

CREATE TABLE retention_purges (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    actor_id        text NOT NULL,
    closed_before   timestamptz NOT NULL,
    referral_count  integer NOT NULL,
    row_count       integer NOT NULL,
    refs            text[] NOT NULL
);
