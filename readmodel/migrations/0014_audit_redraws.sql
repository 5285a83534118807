-- The monthly sample explains its shortfalls, can be drawn again on purpose (the earlier
-- worklist kept, marked superseded, with who redrew it), and names its items' states plainly.

ALTER TABLE audit_worklists
    ADD COLUMN shortfall_reasons jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN redraw_of bigint REFERENCES audit_worklists (id),
    ADD COLUMN superseded_at timestamptz,
    ADD COLUMN superseded_by text,
    DROP CONSTRAINT audit_worklists_month_seed_key;
-- One worklist in force per (month, seed); those superseded by a redraw stay for the record.
CREATE UNIQUE INDEX audit_worklists_in_force_idx ON audit_worklists (month, seed) WHERE superseded_at IS NULL;

ALTER TABLE audit_worklist_items DROP CONSTRAINT audit_worklist_items_status_check;
UPDATE audit_worklist_items SET status = 'to_review' WHERE status = 'open';
ALTER TABLE audit_worklist_items
    ALTER COLUMN status SET DEFAULT 'to_review',
    ADD CONSTRAINT audit_worklist_items_status_check CHECK (status IN ('to_review', 'reviewed'));
