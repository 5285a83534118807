-- Multi-agency panels (workflows/panel.py): each sitting, its agenda, who attended and who was absent,
-- projected from the sitting's facts. A sitting is a case: its facts, agreed actions and escalations share
-- the referrals' tables under its ID. Also the strategy discussion's named attendance (the roles each
-- attendee filled, the required roles absent), which its facts have carried since named attendance.

CREATE TABLE panel_sittings (
    sitting_id   text PRIMARY KEY,
    panel_id     text NOT NULL,
    panel_name   text NOT NULL,
    day          date NOT NULL,
    meets_at     timestamptz NOT NULL,
    phase        text NOT NULL CHECK (phase IN ('agenda', 'in_session', 'minuted')),
    opened_at    timestamptz NOT NULL,
    held_at      timestamptz,
    closed_at    timestamptz,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX panel_sittings_panel_idx ON panel_sittings (panel_id, day);
CREATE INDEX panel_sittings_upcoming_idx ON panel_sittings (meets_at) WHERE closed_at IS NULL;

CREATE TABLE panel_agenda_items (
    sitting_id    text NOT NULL REFERENCES panel_sittings (sitting_id),
    case_id       text NOT NULL,  -- the child's live referral or missing episode
    listed_at     timestamptz NOT NULL,
    reasons       text[] NOT NULL,
    carried_from  text,
    referred_by   text,
    removed_at    timestamptz,
    decided_at    timestamptz,
    decided_by    text,
    grade         text,
    grade_result  text,
    action_ids    text[] NOT NULL DEFAULT '{}',
    absent_roles  text[] NOT NULL DEFAULT '{}',
    not_reached   boolean NOT NULL DEFAULT false,
    carried_to    text,
    PRIMARY KEY (sitting_id, case_id)
);
CREATE INDEX panel_agenda_items_case_idx ON panel_agenda_items (case_id);
-- The next sitting's agenda reads the cases its panel did not reach and has not yet carried.
CREATE INDEX panel_agenda_items_carried_idx ON panel_agenda_items (sitting_id) WHERE not_reached AND carried_to IS NULL;

CREATE TABLE panel_attendees (
    sitting_id  text NOT NULL REFERENCES panel_sittings (sitting_id),
    seq         integer NOT NULL,
    position    integer NOT NULL,
    name        text NOT NULL,
    agency      text NOT NULL,
    role        text NOT NULL,
    named_role  text,
    case_ids    text[] NOT NULL,  -- the cases they attended for; empty: every case
    PRIMARY KEY (sitting_id, seq, position)
);

-- A required role not filled for a case: with its reason when one was given, flagged (and escalated) either way.
CREATE TABLE panel_absences (
    sitting_id  text NOT NULL REFERENCES panel_sittings (sitting_id),
    case_id     text NOT NULL,
    named_role  text NOT NULL,
    reason      text,
    escalated   boolean NOT NULL DEFAULT false,
    at          timestamptz NOT NULL,
    PRIMARY KEY (sitting_id, case_id, named_role)
);

CREATE OR REPLACE FUNCTION reference_names_a_case() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM referrals WHERE reference = NEW.reference)
       AND NOT EXISTS (SELECT 1 FROM missing_episodes WHERE episode_id = NEW.reference)
       AND NOT EXISTS (SELECT 1 FROM trigger_plans WHERE plan_id = NEW.reference)
       AND NOT EXISTS (SELECT 1 FROM panel_sittings WHERE sitting_id = NEW.reference) THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
            MESSAGE = TG_TABLE_NAME || '.reference names no referral, missing episode, trigger plan or panel sitting';
    END IF;
    RETURN NULL;
END $$;

-- Named attendance at strategy discussions.
ALTER TABLE strategy_attendees ADD COLUMN named_role text;
CREATE TABLE strategy_missing_roles (
    reference       text NOT NULL,
    discussion_seq  integer NOT NULL,
    named_role      text NOT NULL,
    reason_given    boolean NOT NULL,
    reason          text,  -- none when the role was left out without one
    PRIMARY KEY (reference, discussion_seq, named_role),
    FOREIGN KEY (reference, discussion_seq) REFERENCES strategy_discussions (reference, seq)
);
-- Discussions recorded before: read from their facts.
UPDATE strategy_attendees a SET named_role = e.payload -> 'attendees' -> (a.position - 1) ->> 'named_role'
FROM referral_events e
WHERE e.stream = a.reference AND e.seq = a.discussion_seq AND e.kind = 'strategy_discussion_held';
INSERT INTO strategy_missing_roles (reference, discussion_seq, named_role, reason_given, reason)
SELECT d.reference, d.seq, missing.role, given.reason IS NOT NULL, given.reason
FROM strategy_discussions d
JOIN referral_events e ON e.stream = d.reference AND e.seq = d.seq AND e.kind = 'strategy_discussion_held'
CROSS JOIN LATERAL jsonb_array_elements_text(COALESCE(e.payload -> 'missing_roles', '[]')) AS missing(role)
CROSS JOIN LATERAL (
    SELECT (SELECT absence ->> 'reason' FROM jsonb_array_elements(COALESCE(e.payload -> 'absences', '[]')) absence
            WHERE absence ->> 'named_role' = missing.role LIMIT 1) AS reason
) given
ON CONFLICT DO NOTHING;
