-- Attachments sealed at rest: each file's own key, wrapped by the platform's master key
-- ("v1:KEYID:…"). NULL for files stored in clear before sealing was introduced.
ALTER TABLE attachments ADD COLUMN wrapped_key TEXT;
