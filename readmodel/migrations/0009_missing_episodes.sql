-- Missing episodes (workflows/missing.py): the episode, its reviews and its tracing, projected from
-- its facts. An episode's facts, agreed actions and escalations share the referrals' tables, so a
-- fact's reference now names a case: a referral or a missing episode (checked by trigger, as the
-- foreign keys to referrals were, and refused with the same SQLSTATE class).

CREATE TABLE missing_episodes (
    episode_id          text PRIMARY KEY,
    report_id           uuid NOT NULL UNIQUE,
    identity_key        text NOT NULL,  -- a digest of the child's name and date of birth, never the name
    station             text NOT NULL,
    reported_by         text NOT NULL,
    reported_at         timestamptz NOT NULL,
    missing_since       timestamptz NOT NULL,
    assessed_grade      text NOT NULL CHECK (assessed_grade IN ('low', 'medium', 'high')),
    grade               text NOT NULL CHECK (grade IN ('low', 'medium', 'high')),
    indicators          text[] NOT NULL,
    phase               text NOT NULL CHECK (phase IN ('missing', 'returned', 'closed')),
    review_due          timestamptz,
    tracing_due         timestamptz,
    last_tracing_at     timestamptz,
    found_at            timestamptz,
    where_found         text,
    how_found           text,
    safe_and_well       text,
    interview_due       timestamptz,
    interview_outcome   text,
    intelligence_shared boolean,
    closed_at           timestamptz,
    updated_at          timestamptz NOT NULL
);
CREATE INDEX missing_episodes_open_idx ON missing_episodes (phase, reported_at) WHERE closed_at IS NULL;
-- The slot a repeat-missing list reads: every episode of the same child.
CREATE INDEX missing_episodes_identity_idx ON missing_episodes (identity_key, reported_at);

CREATE TABLE missing_reviews (
    episode_id     text NOT NULL REFERENCES missing_episodes (episode_id),
    seq            integer NOT NULL,
    reviewed_by    text NOT NULL,
    reviewer_rank  text,
    grade          text NOT NULL,
    tracing_actions integer NOT NULL,
    at             timestamptz NOT NULL,
    PRIMARY KEY (episode_id, seq)
);

CREATE TABLE missing_tracing (
    episode_id   text NOT NULL REFERENCES missing_episodes (episode_id),
    seq          integer NOT NULL,
    activity     text NOT NULL,
    action_id    text,
    recorded_by  text NOT NULL,
    at           timestamptz NOT NULL,
    PRIMARY KEY (episode_id, seq)
);

CREATE FUNCTION reference_names_a_case() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM referrals WHERE reference = NEW.reference)
       AND NOT EXISTS (SELECT 1 FROM missing_episodes WHERE episode_id = NEW.reference) THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
            MESSAGE = TG_TABLE_NAME || '.reference names no referral or missing episode';
    END IF;
    RETURN NULL;
END $$;

ALTER TABLE referral_events DROP CONSTRAINT referral_events_reference_fkey;
CREATE CONSTRAINT TRIGGER referral_events_case AFTER INSERT OR UPDATE OF reference ON referral_events
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION reference_names_a_case();
ALTER TABLE agreed_actions DROP CONSTRAINT agreed_actions_reference_fkey;
CREATE CONSTRAINT TRIGGER agreed_actions_case AFTER INSERT OR UPDATE OF reference ON agreed_actions
    FOR EACH ROW EXECUTE FUNCTION reference_names_a_case();
ALTER TABLE escalations DROP CONSTRAINT escalations_reference_fkey;
CREATE CONSTRAINT TRIGGER escalations_case AFTER INSERT OR UPDATE OF reference ON escalations
    FOR EACH ROW EXECUTE FUNCTION reference_names_a_case();
