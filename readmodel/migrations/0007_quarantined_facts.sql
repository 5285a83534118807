-- Facts PostgreSQL refused for a reason retrying cannot mend (a character text cannot hold, a
-- value out of range, a projection that fails): kept whole, with the reason, until an
-- administrator re-applies them. The fact is kept as JSON bytes (bytea) because what made it
-- unrecordable may be a character the text and jsonb types refuse.
CREATE TABLE quarantined_facts (
    stream             text NOT NULL,
    seq                integer NOT NULL CHECK (seq > 0),
    reference          text NOT NULL,
    kind               text NOT NULL,
    at                 timestamptz,  -- none when the fact's own time is what PostgreSQL refused
    reason             text NOT NULL,
    fact               bytea NOT NULL,
    quarantined_at     timestamptz NOT NULL DEFAULT now(),
    reapply_attempts   integer NOT NULL DEFAULT 0,
    last_reapplied_at  timestamptz,
    last_reapplied_by  text,
    resolved_at        timestamptz,
    resolved_by        text,
    PRIMARY KEY (stream, seq)
);
CREATE INDEX quarantined_facts_open_idx ON quarantined_facts (reference) WHERE resolved_at IS NULL;

-- A referral whose submission was quarantined still shows in lists, as a placeholder written
-- from safe fields only: the form's own columns stay empty until the fact is re-applied.
ALTER TABLE referrals
    ADD COLUMN record_incomplete boolean NOT NULL DEFAULT false,
    ALTER COLUMN form_id DROP NOT NULL,
    ALTER COLUMN form_digest DROP NOT NULL,
    ALTER COLUMN incident_type DROP NOT NULL,
    ALTER COLUMN incident_at DROP NOT NULL,
    ALTER COLUMN location_key DROP NOT NULL,
    ALTER COLUMN station DROP NOT NULL,
    ALTER COLUMN officer_id DROP NOT NULL,
    ALTER COLUMN initial_risk DROP NOT NULL,
    ALTER COLUMN section_46 DROP NOT NULL;
