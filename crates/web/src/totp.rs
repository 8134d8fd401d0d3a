//! TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps, as every authenticator app expects) and
//! recovery codes for the second factor of local accounts.

use crate::auth::sha256_hex;
use rand::{Rng, RngCore};
use totp_rs::{Algorithm, Secret, TOTP};

const STEP_SECONDS: u64 = 30;
pub const RECOVERY_CODES: usize = 10;
/// Unambiguous characters (no 0/O, 1/I/L) for codes people copy from paper.
const RECOVERY_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// A new 160-bit secret, base32-encoded (what authenticator apps take).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut bytes);
    Secret::Raw(bytes.to_vec()).to_encoded().to_string()
}

fn totp(secret: &str, account: &str) -> Option<TOTP> {
    let bytes = Secret::Encoded(secret.to_string()).to_bytes().ok()?;
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP_SECONDS,
        bytes,
        Some("Info Parquet".into()),
        account.replace(':', " "),
    )
    .ok()
}

/// The `otpauth://` address an authenticator app scans.
pub fn provisioning_url(secret: &str, account: &str) -> Option<String> {
    totp(secret, account).map(|t| t.get_url())
}

/// The QR code of the provisioning address, as inline SVG (no script, no style attribute).
pub fn qr_svg(url: &str) -> Option<String> {
    let code = qrcode::QrCode::new(url.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    // Drop the XML declaration: the SVG is embedded in the page.
    Some(match svg.find("<svg") {
        Some(start) => svg[start..].to_string(),
        None => svg,
    })
}

/// The time step a code is valid for (the current one, or one either side for clock drift),
/// or `None` when the code is wrong.
pub fn matching_step(secret: &str, code: &str, unix_seconds: i64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let totp = totp(secret, "x")?;
    let now_step = u64::try_from(unix_seconds).ok()? / STEP_SECONDS;
    let mut found = None;
    for step in [now_step.saturating_sub(1), now_step, now_step + 1] {
        let expected = totp.generate(step * STEP_SECONDS);
        // Compare every candidate fully: the time taken says nothing about which matched.
        let same = expected
            .bytes()
            .zip(code.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if same {
            found = i64::try_from(step).ok();
        }
    }
    found
}

/// Ten new recovery codes, `XXXXX-XXXXX` (50 bits each).
pub fn new_recovery_codes() -> Vec<String> {
    let mut rng = rand::thread_rng();
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut code = String::with_capacity(11);
            for i in 0..10 {
                if i == 5 {
                    code.push('-');
                }
                let index = rng.gen_range(0..RECOVERY_ALPHABET.len());
                code.push(char::from(RECOVERY_ALPHABET[index]));
            }
            code
        })
        .collect()
}

/// The stored form of a recovery code, however it was typed (case, dashes, spaces).
pub fn recovery_hash(code: &str) -> String {
    let normalised: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    sha256_hex(&normalised)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B: the SHA-1 secret "12345678901234567890" at T = 59 s gives
    /// 94287082 in 8 digits, so 287082 in 6.
    #[test]
    fn codes_follow_rfc_6238() {
        let secret = Secret::Raw(b"12345678901234567890".to_vec())
            .to_encoded()
            .to_string();
        assert_eq!(matching_step(&secret, "287082", 59), Some(1));
        assert_eq!(matching_step(&secret, "287 082", 59 + 30), Some(1), "drift");
        assert_eq!(matching_step(&secret, "287082", 59 + 90), None, "too old");
        assert_eq!(matching_step(&secret, "000000", 59), None);
        assert_eq!(matching_step(&secret, "28708", 59), None);
    }

    #[test]
    fn recovery_codes_are_distinct_and_forgiving_when_typed() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert_eq!(
            codes.iter().collect::<std::collections::HashSet<_>>().len(),
            RECOVERY_CODES
        );
        let code = &codes[0];
        assert_eq!(code.len(), 11);
        assert_eq!(
            recovery_hash(code),
            recovery_hash(&format!(" {} ", code.to_lowercase().replace('-', "")))
        );
    }

    #[test]
    fn enrolment_material_is_scannable() {
        let secret = new_secret();
        let url = provisioning_url(&secret, "agent@ddpp41.gouv.fr").expect("url");
        assert!(url.starts_with("otpauth://totp/Info%20Parquet:agent%40ddpp41.gouv.fr?"));
        assert!(url.contains(&format!("secret={secret}")));
        let svg = qr_svg(&url).expect("svg");
        assert!(svg.starts_with("<svg") && !svg.contains("style="));
    }
}
