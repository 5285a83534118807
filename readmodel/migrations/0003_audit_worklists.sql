-- Audit worklists: the monthly quality-assurance sample, drawn at random but reproducibly.
-- One worklist per (month, seed): drawing it again finds the recorded one. References only,
-- no personal data; no foreign key to referrals, so a retention purge leaves the audit trail.

CREATE TABLE audit_worklists (
    id         bigserial PRIMARY KEY,
    month      text NOT NULL CHECK (month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    seed       integer NOT NULL,
    quotas     jsonb NOT NULL,
    shortfall  jsonb NOT NULL DEFAULT '{}'::jsonb,
    drawn_at   timestamptz NOT NULL DEFAULT now(),
    drawn_by   text NOT NULL,
    UNIQUE (month, seed)
);

CREATE TABLE audit_worklist_items (
    worklist_id  bigint NOT NULL REFERENCES audit_worklists (id),
    position     integer NOT NULL,
    category     text NOT NULL,
    reference    text NOT NULL,
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'reviewed')),
    reviewed_by  text,
    reviewed_at  timestamptz,
    PRIMARY KEY (worklist_id, position),
    UNIQUE (worklist_id, reference)
);
