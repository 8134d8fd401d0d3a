-- Full-text search over referrals (title, facts, references, parties), French stemming. The
-- application writes each referral's vector, accents removed, in the transaction that changes
-- it; this fills it for existing rows the same way.
ALTER TABLE referrals ADD COLUMN search_vector tsvector;

UPDATE referrals r SET search_vector = to_tsvector('french', translate(lower(
    r.title || ' ' || r.facts || ' ' || COALESCE(r.reference, '') || ' ' ||
    COALESCE(r.administration_reference, '') || ' ' || COALESCE(r.parquet_number, '') || ' ' ||
    COALESCE((SELECT string_agg(COALESCE(p.last_name, '') || ' ' || COALESCE(p.first_names, '') || ' ' ||
                                COALESCE(p.name, '') || ' ' || COALESCE(p.siren, '') || ' ' ||
                                COALESCE(p.siret, ''), ' ')
              FROM parties p WHERE p.referral_id = r.id), '')),
    'àâäáãåçéèêëîïíìôöóòõùûüúÿñ', 'aaaaaaceeeeiiiiooooouuuuyn'));

CREATE INDEX referrals_search ON referrals USING GIN (search_vector);
