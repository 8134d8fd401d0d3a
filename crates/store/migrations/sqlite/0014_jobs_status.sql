-- /metrics counts waiting and failed jobs at every scrape: by index, not by scanning every job
-- ever done.
CREATE INDEX jobs_status ON jobs (status);
