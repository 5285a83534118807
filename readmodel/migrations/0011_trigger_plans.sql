-- Trigger plans (workflows/plan.py): a plan per child, its versions and its police addenda, projected
-- from its facts; a missing episode's reading of its child's plan. A plan agrees actions and raises
-- escalations like a case, so a fact's reference may now name a trigger plan too.

CREATE TABLE trigger_plans (
    plan_id          text PRIMARY KEY,
    identity_key     text NOT NULL UNIQUE,  -- a digest of the child's name and date of birth, never the name
    version          integer NOT NULL,
    owner            text NOT NULL,
    owner_manager    text,
    review_by        timestamptz NOT NULL,
    written_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    ended_at         timestamptz,
    updated_at       timestamptz NOT NULL
);
-- The slot the plans-due-for-review list reads.
CREATE INDEX trigger_plans_review_idx ON trigger_plans (review_by) WHERE ended_at IS NULL;

-- Every version whole (child data, as a VIST's submission_versions are): the plan police read.
CREATE TABLE trigger_plan_versions (
    plan_id     text NOT NULL REFERENCES trigger_plans (plan_id),
    version     integer NOT NULL,
    plan        jsonb NOT NULL,
    folds_in    integer[] NOT NULL,
    written_by  text NOT NULL,
    written_at  timestamptz NOT NULL,
    PRIMARY KEY (plan_id, version)
);

CREATE TABLE trigger_plan_addenda (
    plan_id            text NOT NULL REFERENCES trigger_plans (plan_id),
    number             integer NOT NULL,
    information        text NOT NULL,
    fold_in_action_id  text,
    folded_into        integer,
    added_by           text NOT NULL,
    added_at           timestamptz NOT NULL,
    PRIMARY KEY (plan_id, number)
);

-- What a missing report found of the child's plan (none: the child had none).
ALTER TABLE missing_episodes
    ADD COLUMN trigger_plan_id       text,
    ADD COLUMN trigger_plan_version  integer,
    ADD COLUMN trigger_plan_required boolean;

CREATE OR REPLACE FUNCTION reference_names_a_case() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM referrals WHERE reference = NEW.reference)
       AND NOT EXISTS (SELECT 1 FROM missing_episodes WHERE episode_id = NEW.reference)
       AND NOT EXISTS (SELECT 1 FROM trigger_plans WHERE plan_id = NEW.reference) THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
            MESSAGE = TG_TABLE_NAME || '.reference names no referral, missing episode or trigger plan';
    END IF;
    RETURN NULL;
END $$;
