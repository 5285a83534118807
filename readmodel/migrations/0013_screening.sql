-- What screening sees beyond earlier referrals: live child protection plans, and the adults around the child.

-- Child protection plans as live facts: made at a conference, held against each child (by identity key)
-- with the allocated social worker, until a later conference about the child ends it.
CREATE TABLE child_protection_plans (
    identity_key             text NOT NULL,  -- a digest of the child's name and date of birth, never the name
    reference                text NOT NULL REFERENCES referrals (reference),
    child_id                 text NOT NULL,
    started_at               timestamptz NOT NULL,
    social_worker_id         text,           -- none on plans recorded before the social worker was named
    social_worker_name       text,
    ended_at                 timestamptz,
    ended_by                 text,           -- the referral whose conference ended it
    PRIMARY KEY (reference, child_id)
);
CREATE INDEX child_protection_plans_live_idx ON child_protection_plans (identity_key) WHERE ended_at IS NULL;

-- The adults involved in each referral (suspects, parents, partners...), by identity key and role only:
-- no name is kept; an adult without a date of birth has no key and is never matched.
CREATE TABLE referral_adults (
    reference     text NOT NULL REFERENCES referrals (reference),
    position      integer NOT NULL,   -- A1, A2...: the adult's place in the form
    role          text NOT NULL,
    identity_key  text,
    PRIMARY KEY (reference, position)
);
CREATE INDEX referral_adults_identity_idx ON referral_adults (identity_key) WHERE identity_key IS NOT NULL;
