//! Encryption of attachments at rest. Each file has its own random 256-bit key; the content is
//! sealed with XChaCha20-Poly1305 in the STREAM construction (64 KiB segments, each
//! authenticated, the last one marked, so truncation, reordering and alteration are all
//! detected) and the file key is wrapped by the platform's master key. Rotating the master key
//! only rewraps file keys: the files themselves are untouched.

use base64::Engine;
use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload};
use chacha20poly1305::{AeadCore, XChaCha20Poly1305};
use sha2::{Digest, Sha256};
use std::io::Read;

/// Plaintext bytes per sealed segment.
pub const SEGMENT: usize = 64 * 1024;
const TAG: usize = 16;
/// Identifies a sealed file and its format.
const MAGIC: &[u8; 8] = b"IPSEAL1\0";
/// XChaCha20's 24-byte nonce minus STREAM's 5 bytes of counter and last-segment flag.
const NONCE_PREFIX: usize = 19;
pub const HEADER: usize = MAGIC.len() + NONCE_PREFIX;
const WRAP_CONTEXT: &[u8] = b"infoparquet file key v1";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("clé maîtresse invalide (32 octets en base64 attendus)")]
    BadMasterKey,
    #[error("clé de fichier scellée illisible")]
    BadWrappedKey,
    #[error("aucune clé maîtresse connue ne correspond ({0})")]
    UnknownMasterKey(String),
    #[error("contenu chiffré altéré ou tronqué")]
    Tampered,
}

/// A master key and the identifier stored beside what it wraps.
#[derive(Clone)]
struct MasterKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl MasterKey {
    fn from_base64(text: &str) -> Result<MasterKey, SealError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| SealError::BadMasterKey)?;
        if bytes.len() != 32 {
            return Err(SealError::BadMasterKey);
        }
        let id = hex::encode(&Sha256::digest(&bytes)[..6]);
        let cipher =
            XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| SealError::BadMasterKey)?;
        Ok(MasterKey { id, cipher })
    }
}

/// The current master key, which wraps new file keys, and earlier ones still able to unwrap.
#[derive(Clone)]
pub struct KeyRing {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys themselves.
        f.debug_struct("KeyRing")
            .field("current", &self.current.id)
            .field("previous", &self.previous.len())
            .finish()
    }
}

/// A new random master key, base64-encoded.
pub fn new_master_key() -> String {
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    base64::engine::general_purpose::STANDARD.encode(key)
}

impl KeyRing {
    pub fn new(current: &str, previous: &[String]) -> Result<KeyRing, SealError> {
        Ok(KeyRing {
            current: MasterKey::from_base64(current)?,
            previous: previous
                .iter()
                .map(|k| MasterKey::from_base64(k))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// Wraps a file key under the current master key: `v1:KEYID:base64(nonce ‖ sealed key)`.
    fn wrap(&self, file_key: &[u8; 32]) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .current
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: file_key,
                    aad: WRAP_CONTEXT,
                },
            )
            // Encrypting 32 bytes cannot exceed the cipher's limits.
            .unwrap_or_default();
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        format!(
            "v1:{}:{}",
            self.current.id,
            base64::engine::general_purpose::STANDARD.encode(blob)
        )
    }

    fn unwrap_key(&self, wrapped: &str) -> Result<[u8; 32], SealError> {
        let mut parts = wrapped.splitn(3, ':');
        let (Some("v1"), Some(id), Some(blob)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SealError::BadWrappedKey);
        };
        let master = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or_else(|| SealError::UnknownMasterKey(id.to_string()))?;
        let blob = base64::engine::general_purpose::STANDARD
            .decode(blob)
            .map_err(|_| SealError::BadWrappedKey)?;
        if blob.len() != 24 + 32 + TAG {
            return Err(SealError::BadWrappedKey);
        }
        let (nonce, sealed) = blob.split_at(24);
        let key = master
            .cipher
            .decrypt(
                nonce.into(),
                Payload {
                    msg: sealed,
                    aad: WRAP_CONTEXT,
                },
            )
            .map_err(|_| SealError::Tampered)?;
        key.try_into().map_err(|_| SealError::BadWrappedKey)
    }

    /// The same file key wrapped under the current master key (rotation).
    pub fn rewrap(&self, wrapped: &str) -> Result<String, SealError> {
        Ok(self.wrap(&self.unwrap_key(wrapped)?))
    }

    /// Whether a wrapped key is already under the current master key.
    pub fn is_current(&self, wrapped: &str) -> bool {
        wrapped.split(':').nth(1) == Some(self.current.id.as_str())
    }

    /// Starts sealing a new file: its header, and the sealer for its segments.
    pub fn sealer(&self) -> (Vec<u8>, Sealer) {
        let mut file_key = [0u8; 32];
        OsRng.fill_bytes(&mut file_key);
        let mut prefix = [0u8; NONCE_PREFIX];
        OsRng.fill_bytes(&mut prefix);
        let cipher = XChaCha20Poly1305::new(&file_key.into());
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&prefix);
        let sealer = Sealer {
            encryptor: Some(EncryptorBE32::from_aead(cipher, (&prefix).into())),
            wrapped_key: self.wrap(&file_key),
        };
        (header, sealer)
    }

    /// A reader of the plaintext of a sealed file.
    pub fn open<R: Read>(&self, wrapped: &str, mut sealed: R) -> Result<Unsealer<R>, SealError> {
        let file_key = self.unwrap_key(wrapped)?;
        let mut header = [0u8; HEADER];
        sealed
            .read_exact(&mut header)
            .map_err(|_| SealError::Tampered)?;
        if &header[..MAGIC.len()] != MAGIC {
            return Err(SealError::Tampered);
        }
        let cipher = XChaCha20Poly1305::new(&file_key.into());
        let prefix: [u8; NONCE_PREFIX] = header[MAGIC.len()..]
            .try_into()
            .map_err(|_| SealError::Tampered)?;
        Ok(Unsealer {
            inner: sealed,
            decryptor: Some(DecryptorBE32::from_aead(cipher, (&prefix).into())),
            plain: Vec::new(),
            position: 0,
            pending: None,
        })
    }
}

/// Seals the segments of one file, in order.
pub struct Sealer {
    encryptor: Option<EncryptorBE32<XChaCha20Poly1305>>,
    pub wrapped_key: String,
}

impl Sealer {
    /// Seals a full segment (exactly `SEGMENT` bytes) that is not the last.
    pub fn seal_next(&mut self, segment: &[u8]) -> Result<Vec<u8>, SealError> {
        self.encryptor
            .as_mut()
            .ok_or(SealError::Tampered)?
            .encrypt_next(segment)
            .map_err(|_| SealError::Tampered)
    }

    /// Seals the last segment (at most `SEGMENT` bytes).
    pub fn seal_last(&mut self, segment: &[u8]) -> Result<Vec<u8>, SealError> {
        self.encryptor
            .take()
            .ok_or(SealError::Tampered)?
            .encrypt_last(segment)
            .map_err(|_| SealError::Tampered)
    }
}

/// Reads the plaintext of a sealed file, checking every segment; an altered, reordered or
/// truncated file is an `InvalidData` error, never silently short content.
pub struct Unsealer<R> {
    inner: R,
    decryptor: Option<DecryptorBE32<XChaCha20Poly1305>>,
    plain: Vec<u8>,
    position: usize,
    /// The next sealed segment, read ahead to know whether the current one is the last.
    pending: Option<Vec<u8>>,
}

fn read_segment<R: Read>(reader: &mut R) -> std::io::Result<Vec<u8>> {
    let mut segment = Vec::with_capacity(SEGMENT + TAG);
    reader
        .by_ref()
        .take((SEGMENT + TAG) as u64)
        .read_to_end(&mut segment)?;
    Ok(segment)
}

fn tampered() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, SealError::Tampered)
}

impl<R: Read> Read for Unsealer<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.position == self.plain.len() {
            if self.decryptor.is_none() {
                return Ok(0);
            }
            let current = match self.pending.take() {
                Some(segment) => segment,
                None => read_segment(&mut self.inner)?,
            };
            if current.len() < TAG {
                // The marked last segment never arrived: truncated.
                return Err(tampered());
            }
            let next = if current.len() == SEGMENT + TAG {
                read_segment(&mut self.inner)?
            } else {
                Vec::new()
            };
            let plain = if next.is_empty() {
                let decryptor = self.decryptor.take().ok_or_else(tampered)?;
                decryptor
                    .decrypt_last(current.as_slice())
                    .map_err(|_| tampered())?
            } else {
                self.pending = Some(next);
                self.decryptor
                    .as_mut()
                    .ok_or_else(tampered)?
                    .decrypt_next(current.as_slice())
                    .map_err(|_| tampered())?
            };
            self.plain = plain;
            self.position = 0;
        }
        let count = out.len().min(self.plain.len() - self.position);
        out[..count].copy_from_slice(&self.plain[self.position..self.position + count]);
        self.position += count;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(ring: &KeyRing, plain: &[u8]) -> (Vec<u8>, String) {
        let (mut sealed, mut sealer) = ring.sealer();
        let mut chunks = plain.chunks(SEGMENT).peekable();
        while let Some(chunk) = chunks.next() {
            if chunks.peek().is_some() {
                sealed.extend(sealer.seal_next(chunk).expect("seal"));
            } else {
                sealed.extend(sealer.seal_last(chunk).expect("seal"));
            }
        }
        (sealed, sealer.wrapped_key)
    }

    fn unseal(ring: &KeyRing, wrapped: &str, sealed: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        ring.open(wrapped, sealed)
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn round_trips_at_every_segment_boundary() {
        let ring = KeyRing::new(&new_master_key(), &[]).expect("ring");
        for size in [
            1,
            SEGMENT - 1,
            SEGMENT,
            SEGMENT + 1,
            3 * SEGMENT,
            3 * SEGMENT + 7,
        ] {
            let plain: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let (sealed, wrapped) = seal(&ring, &plain);
            assert_eq!(sealed.len(), HEADER + size + size.div_ceil(SEGMENT) * TAG);
            assert!(
                !sealed.windows(64).any(|w| plain.starts_with(w)) || size < 64,
                "no plaintext on disk"
            );
            assert_eq!(
                unseal(&ring, &wrapped, &sealed).expect("unseal"),
                plain,
                "{size}"
            );
        }
    }

    #[test]
    fn alteration_truncation_and_reordering_are_detected() {
        let ring = KeyRing::new(&new_master_key(), &[]).expect("ring");
        let plain = vec![7u8; 3 * SEGMENT];
        let (sealed, wrapped) = seal(&ring, &plain);
        let mut flipped = sealed.clone();
        flipped[HEADER + 10] ^= 1;
        assert!(unseal(&ring, &wrapped, &flipped).is_err(), "altered");
        let truncated = &sealed[..HEADER + 2 * (SEGMENT + TAG)];
        assert!(
            unseal(&ring, &wrapped, truncated).is_err(),
            "last segment removed"
        );
        let mut reordered = sealed[..HEADER].to_vec();
        reordered.extend_from_slice(&sealed[HEADER + SEGMENT + TAG..HEADER + 2 * (SEGMENT + TAG)]);
        reordered.extend_from_slice(&sealed[HEADER..HEADER + SEGMENT + TAG]);
        reordered.extend_from_slice(&sealed[HEADER + 2 * (SEGMENT + TAG)..]);
        assert!(unseal(&ring, &wrapped, &reordered).is_err(), "reordered");
    }

    #[test]
    fn rotation_rewraps_keys_and_old_keys_stop_working_once_dropped() {
        let old = new_master_key();
        let new = new_master_key();
        let before = KeyRing::new(&old, &[]).expect("ring");
        let (sealed, wrapped) = seal(&before, b"proces-verbal");
        let during = KeyRing::new(&new, std::slice::from_ref(&old)).expect("ring");
        assert!(!during.is_current(&wrapped));
        assert_eq!(
            unseal(&during, &wrapped, &sealed).expect("old key still known"),
            b"proces-verbal"
        );
        let rewrapped = during.rewrap(&wrapped).expect("rewrap");
        assert!(during.is_current(&rewrapped));
        let after = KeyRing::new(&new, &[]).expect("ring");
        assert_eq!(
            unseal(&after, &rewrapped, &sealed).expect("unseal"),
            b"proces-verbal"
        );
        assert!(matches!(
            after.open(&wrapped, sealed.as_slice()),
            Err(SealError::UnknownMasterKey(_))
        ));
        assert!(KeyRing::new("trop court", &[]).is_err());
    }
}
