-- Full-text search over referrals (title, facts, references, parties). The application writes
-- each referral's document in the transaction that changes it; this fills it for existing rows.
CREATE VIRTUAL TABLE referral_search USING fts5(
    referral_id UNINDEXED,
    body,
    tokenize = 'unicode61 remove_diacritics 2'
);

INSERT INTO referral_search (referral_id, body)
SELECT r.id,
       lower(r.title || ' ' || r.facts || ' ' || COALESCE(r.reference, '') || ' ' ||
             COALESCE(r.administration_reference, '') || ' ' || COALESCE(r.parquet_number, '') || ' ' ||
             COALESCE((SELECT group_concat(COALESCE(p.last_name, '') || ' ' || COALESCE(p.first_names, '') || ' ' ||
                                           COALESCE(p.name, '') || ' ' || COALESCE(p.siren, '') || ' ' ||
                                           COALESCE(p.siret, ''), ' ')
                       FROM parties p WHERE p.referral_id = r.id), ''))
FROM referrals r;
