-- The current stage's deadline, kept up to date on each stage change and risk regrade,
-- so lists of what is overdue come straight from the read model.
ALTER TABLE referrals ADD COLUMN deadline timestamptz;
CREATE INDEX referrals_open_deadline_idx ON referrals (deadline) WHERE closed_at IS NULL;
