-- The read model of referral workflows: every fact the workflows record, and projections of them.
-- The workflow history is the source of truth; each fact arrives once per (stream, seq).

CREATE TABLE referrals (
    reference            text PRIMARY KEY,
    form_id              uuid NOT NULL UNIQUE,
    form_digest          text NOT NULL,
    incident_type        text NOT NULL,
    incident_at          timestamptz NOT NULL,
    location_key         text NOT NULL,
    station              text NOT NULL,
    officer_id           text NOT NULL,
    initial_risk         text NOT NULL,
    risk                 text NOT NULL,
    stage                text NOT NULL,
    section_46           boolean NOT NULL,
    submitted_at         timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    screening_outcome    text,
    section_47           boolean,
    child_protection_plan boolean,
    closed_at            timestamptz,
    close_reason         text
);
CREATE INDEX referrals_stage_idx ON referrals (stage, updated_at);
CREATE INDEX referrals_location_idx ON referrals (location_key);

CREATE TABLE referral_events (
    stream       text NOT NULL,
    seq          integer NOT NULL CHECK (seq > 0),
    reference    text NOT NULL REFERENCES referrals (reference) DEFERRABLE INITIALLY DEFERRED,
    kind         text NOT NULL,
    at           timestamptz NOT NULL,
    actor_id     text NOT NULL,
    actor_role   text NOT NULL,
    actor_agency text NOT NULL,
    stage        text,
    risk         text,
    payload      jsonb NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, seq)
);
CREATE INDEX referral_events_reference_idx ON referral_events (reference, at);

CREATE TABLE submission_versions (
    reference     text NOT NULL REFERENCES referrals (reference),
    version       integer NOT NULL,
    form          jsonb NOT NULL,
    submitted_by  text NOT NULL,
    submitted_at  timestamptz NOT NULL,
    PRIMARY KEY (reference, version)
);

-- Who the referral is about, with match keys for the prior-referral look-up at screening.
CREATE TABLE referral_children (
    reference      text NOT NULL REFERENCES referrals (reference),
    child_id       text NOT NULL,
    name           text NOT NULL,
    date_of_birth  date NOT NULL,
    home_address   text,
    identity_key   text NOT NULL,
    address_key    text,
    PRIMARY KEY (reference, child_id)
);
CREATE INDEX referral_children_identity_idx ON referral_children (identity_key);
CREATE INDEX referral_children_address_idx ON referral_children (address_key);

CREATE TABLE stage_transitions (
    reference   text NOT NULL REFERENCES referrals (reference),
    seq         integer NOT NULL,
    from_stage  text,
    to_stage    text NOT NULL,
    actor_id    text NOT NULL,
    actor_role  text NOT NULL,
    at          timestamptz NOT NULL,
    deadline    timestamptz,
    PRIMARY KEY (reference, seq)
);

CREATE TABLE risk_regrades (
    reference   text NOT NULL REFERENCES referrals (reference),
    seq         integer NOT NULL,
    from_risk   text NOT NULL,
    to_risk     text NOT NULL,
    actor_id    text NOT NULL,
    actor_role  text NOT NULL,
    reason      text NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (reference, seq)
);

CREATE TABLE strategy_discussions (
    reference   text NOT NULL REFERENCES referrals (reference),
    seq         integer NOT NULL,
    held_at     timestamptz NOT NULL,
    section_47  boolean NOT NULL,
    quorate     boolean NOT NULL,
    recorded_by text NOT NULL,
    PRIMARY KEY (reference, seq)
);

CREATE TABLE strategy_attendees (
    reference       text NOT NULL,
    discussion_seq  integer NOT NULL,
    position        integer NOT NULL,
    name            text NOT NULL,
    agency          text NOT NULL,
    role            text NOT NULL,
    PRIMARY KEY (reference, discussion_seq, position),
    FOREIGN KEY (reference, discussion_seq) REFERENCES strategy_discussions (reference, seq)
);

CREATE TABLE conferences (
    reference           text NOT NULL REFERENCES referrals (reference),
    seq                 integer NOT NULL,
    conference_at       timestamptz NOT NULL,
    due_by              timestamptz NOT NULL,
    late_reason         text,
    police_attendance   text NOT NULL,
    attendance_rationale text,
    booked_by           text NOT NULL,
    held_at             timestamptz,
    police_attended     boolean,
    child_protection_plan boolean,
    PRIMARY KEY (reference, seq)
);

CREATE TABLE agreed_actions (
    action_id        text PRIMARY KEY,
    reference        text NOT NULL REFERENCES referrals (reference),
    description      text NOT NULL,
    agency           text NOT NULL,
    owner            text NOT NULL,
    owner_supervisor text,
    deadline         timestamptz NOT NULL,
    agreed_at        timestamptz NOT NULL,
    agreed_by        text NOT NULL,
    reminded_at      timestamptz,
    completed_at     timestamptz,
    completed_by     text,
    completion_note  text
);
CREATE INDEX agreed_actions_open_idx ON agreed_actions (deadline) WHERE completed_at IS NULL;
CREATE INDEX agreed_actions_reference_idx ON agreed_actions (reference);

CREATE TABLE action_reassignments (
    action_id     text NOT NULL REFERENCES agreed_actions (action_id),
    seq           integer NOT NULL,
    from_agency   text NOT NULL,
    from_owner    text NOT NULL,
    to_agency     text NOT NULL,
    to_owner      text NOT NULL,
    new_deadline  timestamptz,
    reason        text NOT NULL,
    actor_id      text NOT NULL,
    at            timestamptz NOT NULL,
    PRIMARY KEY (action_id, seq)
);

CREATE TABLE escalations (
    escalation_id   text PRIMARY KEY,
    reference       text NOT NULL REFERENCES referrals (reference),
    subject         text NOT NULL,
    rung            integer NOT NULL,
    rank            text NOT NULL,
    addressed_to    text NOT NULL,
    reason          text NOT NULL,
    due_at          timestamptz NOT NULL,
    raised_at       timestamptz NOT NULL,
    acknowledged_by text,
    acknowledged_at timestamptz
);
CREATE INDEX escalations_open_idx ON escalations (raised_at) WHERE acknowledged_at IS NULL;
CREATE INDEX escalations_reference_idx ON escalations (reference);
