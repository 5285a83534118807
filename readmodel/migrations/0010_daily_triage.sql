-- The daily domestic-abuse triage: each referral listed on a day's triage, and the decision on it.
CREATE TABLE triage_items (
    triage_id        text NOT NULL,
    reference        text NOT NULL REFERENCES referrals (reference),
    day              date NOT NULL,
    risk             text NOT NULL,
    listed_at        timestamptz NOT NULL,
    due_at           timestamptz NOT NULL,
    prior_referrals  integer NOT NULL,
    outcome          text,
    decided_by       text,
    decided_at       timestamptz,
    PRIMARY KEY (triage_id, reference)
);
CREATE INDEX triage_items_waiting_idx ON triage_items (day) WHERE decided_at IS NULL;
