#!/usr/bin/env python3
"""Example client of the Info Parquet API (Python 3, standard library only).

It does what an administration's own software would do: create a referral, attach documents
(checking the SHA-256 the platform computed against its own), send it, keep the receipt, then
wait until the parquet registers it and print the numéro parquet.

    export INFOPARQUET_TOKEN=ipk_…            # a write token: « Accès API » page, or
                                              # `infoparquet token create --email …`
    python3 examples/send_referral.py --url http://127.0.0.1:8080 pv.pdf photo.jpg

Every creating request carries an Idempotency-Key, so running it again after a network failure
never creates a second referral; 429 answers are retried after their Retry-After delay.
"""

import argparse
import hashlib
import json
import mimetypes
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid


class Api:
    def __init__(self, base_url, token):
        self.base = base_url.rstrip("/") + "/api/v1"
        self.token = token

    def call(self, method, path, body=None, content_type="application/json", idempotency_key=None):
        data = None
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode() if content_type == "application/json" else body
            headers["Content-Type"] = content_type
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        for _ in range(10):
            request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    return json.load(response)
            except urllib.error.HTTPError as error:
                if error.code == 429:
                    time.sleep(int(error.headers.get("Retry-After", "1")))
                    continue
                problem = error.read().decode(errors="replace")
                raise SystemExit(f"{method} {path}: HTTP {error.code}\n{problem}") from None
        raise SystemExit(f"{method} {path}: still rate-limited, giving up")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--token", default=os.environ.get("INFOPARQUET_TOKEN"))
    parser.add_argument("--commune", default="41018", help="INSEE code of the place of the facts")
    parser.add_argument("--wait-seconds", type=int, default=3600, help="how long to wait for registration")
    parser.add_argument("files", nargs="+", help="documents to attach")
    args = parser.parse_args()
    if not args.token:
        raise SystemExit("A token is needed: --token or INFOPARQUET_TOKEN.")
    api = Api(args.url, args.token)
    run = uuid.uuid4()  # one key per logical request of this run

    draft = api.call("POST", "/referrals", {
        "kind": "article_40",
        "urgency": "normal",
        "title": "Travail dissimulé sur un chantier",
        "facts": "Lors du contrôle, quatre salariés non déclarés ont été constatés sur le chantier.",
        "facts_started_on": "2026-03-01",
        "place": {"commune_insee": args.commune, "address": None},
        "offence_codes": [7151],
        "parties": [{"role": "suspect", "kind": "organisation", "name": "SARL Exemple", "siret": "13002526500013"}],
    }, idempotency_key=f"{run}-create")
    referral_id = draft["id"]
    print(f"Draft {referral_id} created.")

    for index, path in enumerate(args.files):
        with open(path, "rb") as handle:
            content = handle.read()
        name = os.path.basename(path)
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        query = urllib.parse.urlencode({"filename": name, "kind": "evidence"})
        attachment = api.call("POST", f"/referrals/{referral_id}/attachments?{query}", content,
                              content_type=media_type, idempotency_key=f"{run}-file-{index}")
        local = hashlib.sha256(content).hexdigest()
        if attachment["sha256"] != local:
            raise SystemExit(f"{name}: the platform computed {attachment['sha256']}, expected {local}")
        print(f"Attached {name} ({attachment['size']} bytes, SHA-256 {local}).")

    sent = api.call("POST", f"/referrals/{referral_id}/submit", {}, idempotency_key=f"{run}-submit")
    receipt = sent.get("receipt")
    if receipt:
        print(f"Sent as {receipt['reference']}; receipt verification code {receipt['verification_code']}.")
    else:
        print(f"Awaiting validation by the service's référent (status {sent['referral']['status']}).")

    deadline = time.monotonic() + args.wait_seconds
    delay = 1
    while time.monotonic() < deadline:
        referral = api.call("GET", f"/referrals/{referral_id}")
        if referral.get("parquet_number"):
            print(f"Registered by the parquet under numéro parquet {referral['parquet_number']}.")
            return 0
        if referral["status"] in ("withdrawn", "closed"):
            print(f"Stopped: status {referral['status']}.")
            return 1
        time.sleep(delay)
        delay = min(delay * 2, 60)
    print("Not registered yet; run again later to keep following it.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
