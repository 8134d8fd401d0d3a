//! Integrity: the hash chain of the journal and the Ed25519 signatures of receipts, decision
//! notices and journal checkpoints. Pure computation over canonical serialisations: the same
//! content always gives the same bytes, hence the same hash and the same signature.

use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier, VerifyingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The `prev_hash` of the first journal entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Instants are serialised to the microsecond, the precision both databases keep.
pub fn canonical_instant(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// One entry of the journal, as hashed. Field order is part of the format: never reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: String,
    pub actor_id: Option<Uuid>,
    pub actor: String,
    pub role: String,
    pub organisation: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub prev_hash: String,
}

impl AuditRecord {
    /// SHA-256 of the canonical JSON of the entry (which includes the previous entry's hash).
    pub fn hash(&self) -> String {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(bytes))
    }
}

/// The outcome of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainFault {
    /// The entry's content no longer matches its hash.
    Altered { seq: i64 },
    /// Sequence numbers jump: entries between are missing.
    Missing { after: i64, found: i64 },
    /// The entry does not follow the one before it (deleted, inserted or reordered entries).
    Broken { seq: i64 },
}

impl std::fmt::Display for ChainFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainFault::Altered { seq } => write!(f, "entry {seq} was altered (its hash no longer matches its content)"),
            ChainFault::Missing { after, found } => write!(f, "entries missing between {after} and {found}"),
            ChainFault::Broken { seq } => write!(f, "entry {seq} does not follow the previous entry (deleted, inserted or reordered entries)"),
        }
    }
}

/// Walks entries in `seq` order, carrying what the next entry must commit to.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    last_seq: i64,
    last_hash: String,
    pub checked: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            last_seq: 0,
            last_hash: GENESIS_HASH.to_string(),
            checked: 0,
        }
    }
}

impl ChainVerifier {
    /// Checks the next entry and its stored hash.
    pub fn check(&mut self, record: &AuditRecord, stored_hash: &str) -> Result<(), ChainFault> {
        if record.seq != self.last_seq + 1 {
            return Err(ChainFault::Missing {
                after: self.last_seq,
                found: record.seq,
            });
        }
        if record.hash() != stored_hash {
            return Err(ChainFault::Altered { seq: record.seq });
        }
        if record.prev_hash != self.last_hash {
            return Err(ChainFault::Broken { seq: record.seq });
        }
        self.last_seq = record.seq;
        self.last_hash = stored_hash.to_string();
        self.checked += 1;
        Ok(())
    }

    pub fn last_hash(&self) -> &str {
        &self.last_hash
    }

    pub fn last_seq(&self) -> i64 {
        self.last_seq
    }
}

/// The platform's signing key (Ed25519).
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "Signer({})", self.public_key())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("la clé de signature doit être 32 octets encodés en base64")]
pub struct InvalidKey;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl Signer {
    pub fn from_seed(seed: [u8; 32]) -> Signer {
        Signer {
            key: SigningKey::from_bytes(&seed),
        }
    }

    pub fn from_base64(seed: &str) -> Result<Signer, InvalidKey> {
        let bytes = b64().decode(seed.trim()).map_err(|_| InvalidKey)?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| InvalidKey)?;
        Ok(Signer::from_seed(seed))
    }

    /// The public key, base64: what outside parties use to check signatures.
    pub fn public_key(&self) -> String {
        b64().encode(self.key.verifying_key().to_bytes())
    }

    pub fn sign(&self, message: &[u8]) -> String {
        b64().encode(self.key.sign(message).to_bytes())
    }
}

/// Checks a base64 signature of `message` under a base64 public key.
pub fn verify_signature(public_key: &str, message: &[u8], signature: &str) -> bool {
    let Ok(key_bytes) = b64().decode(public_key.trim()) else {
        return false;
    };
    let Ok(key_bytes): Result<[u8; 32], _> = key_bytes.try_into() else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(&key_bytes) else {
        return false;
    };
    let Ok(signature_bytes) = b64().decode(signature.trim()) else {
        return false;
    };
    let Ok(signature_bytes): Result<[u8; 64], _> = signature_bytes.try_into() else {
        return false;
    };
    key.verify(message, &Signature::from_bytes(&signature_bytes))
        .is_ok()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertifiedDocument {
    pub filename: String,
    pub size: i64,
    pub sha256: String,
}

/// What a receipt certifies. Field order is part of the format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceiptContent {
    pub format: &'static str,
    pub reference: String,
    pub submitted_at: String,
    pub sender_siret: Option<String>,
    pub parquet_id: Uuid,
    pub parquet: String,
    pub documents: Vec<CertifiedDocument>,
    pub verification_code: String,
}

/// What a decision notice certifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoticeContent {
    pub format: &'static str,
    pub reference: String,
    pub parquet_number: Option<String>,
    pub kind: String,
    pub reason_code: Option<String>,
    pub measure: Option<String>,
    pub mode: Option<String>,
    pub comment: Option<String>,
    pub decided_at: String,
}

/// Canonical bytes of anything signed: compact JSON in declaration order.
pub fn canonical_bytes<T: Serialize>(content: &T) -> Vec<u8> {
    serde_json::to_vec(content).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: i64, prev_hash: &str) -> AuditRecord {
        AuditRecord {
            seq,
            at: canonical_instant(DateTime::<Utc>::UNIX_EPOCH),
            actor_id: None,
            actor: "Claire".into(),
            role: "agent".into(),
            organisation: "DDPP".into(),
            action: "referral.read".into(),
            target: "x".into(),
            detail: String::new(),
            prev_hash: prev_hash.into(),
        }
    }

    #[test]
    fn a_chain_verifies_and_each_fault_is_named() {
        let first = record(1, GENESIS_HASH);
        let second = record(2, &first.hash());
        let third = record(3, &second.hash());
        let mut verifier = ChainVerifier::default();
        for r in [&first, &second, &third] {
            verifier.check(r, &r.hash()).expect("valid");
        }
        assert_eq!(verifier.checked, 3);

        let mut altered = second.clone();
        altered.detail = "changed".into();
        let mut v = ChainVerifier::default();
        v.check(&first, &first.hash()).expect("first");
        assert_eq!(
            v.check(&altered, &second.hash()),
            Err(ChainFault::Altered { seq: 2 })
        );

        let mut v = ChainVerifier::default();
        v.check(&first, &first.hash()).expect("first");
        assert_eq!(
            v.check(&third, &third.hash()),
            Err(ChainFault::Missing { after: 1, found: 3 })
        );

        // An entry renumbered into place still commits to the wrong predecessor.
        let mut moved = third.clone();
        moved.seq = 2;
        let mut v = ChainVerifier::default();
        v.check(&first, &first.hash()).expect("first");
        assert_eq!(
            v.check(&moved, &moved.hash()),
            Err(ChainFault::Broken { seq: 2 })
        );
    }

    #[test]
    fn signatures_detect_any_change() {
        let signer = Signer::from_seed([7; 32]);
        let content = ReceiptContent {
            format: "infoparquet-receipt-v1",
            reference: "IP-2026-000001".into(),
            submitted_at: canonical_instant(DateTime::<Utc>::UNIX_EPOCH),
            sender_siret: Some("13002526500013".into()),
            parquet_id: Uuid::nil(),
            parquet: "Parquet de Blois".into(),
            documents: vec![CertifiedDocument {
                filename: "pv.pdf".into(),
                size: 3,
                sha256: "ab".repeat(32),
            }],
            verification_code: "AAAA-BBBB-CCCC".into(),
        };
        let signature = signer.sign(&canonical_bytes(&content));
        assert!(verify_signature(
            &signer.public_key(),
            &canonical_bytes(&content),
            &signature
        ));
        let mut tampered = content.clone();
        tampered.documents[0].sha256 = "cd".repeat(32);
        assert!(!verify_signature(
            &signer.public_key(),
            &canonical_bytes(&tampered),
            &signature
        ));
        assert!(!verify_signature(
            &Signer::from_seed([8; 32]).public_key(),
            &canonical_bytes(&content),
            &signature
        ));
        assert!(!verify_signature(
            &signer.public_key(),
            &canonical_bytes(&content),
            "not base64"
        ));
        assert!(Signer::from_base64("c2hvcnQ=").is_err());
        assert!(
            !format!("{signer:?}").contains("7, 7"),
            "the secret is never printed"
        );
    }
}
