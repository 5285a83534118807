-- Who referred: police (a VIST, by an officer) or a partner agency (health, education, children's social care),
-- whose referral opens at screening; its referrer's staff ID in place of an officer's.
ALTER TABLE referrals
    ADD COLUMN referring_agency text NOT NULL DEFAULT 'police',
    ADD COLUMN referrer_id      text;
