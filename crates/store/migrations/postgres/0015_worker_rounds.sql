-- The worker's rounds run every few seconds; at 1.2 million referrals each read every open
-- referral (1.7 s on PostgreSQL for the decision reminders). Partial indexes hold only the
-- few rows each round looks for.
CREATE INDEX referrals_undecided ON referrals (registered_at)
    WHERE status IN ('registered', 'under_investigation') AND decided_at IS NULL;
CREATE INDEX referrals_unacknowledged_urgent ON referrals (submitted_at)
    WHERE status = 'submitted' AND acknowledged_at IS NULL AND urgency IN ('immediate', 'urgent');
CREATE INDEX events_decision_reminders ON events (referral_id, at) WHERE type = 'decision_reminder';
