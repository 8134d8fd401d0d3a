//! Identifiers that validate by parsing: once a value of these types exists, it is well formed.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    #[error("le SIREN doit comporter 9 chiffres")]
    SirenLength,
    #[error("le SIRET doit comporter 14 chiffres")]
    SiretLength,
    #[error("la clé de contrôle (Luhn) du numéro est invalide")]
    LuhnChecksum,
    #[error("le code INSEE doit comporter 5 caractères (ex. 41018, 2A004, 97101)")]
    InseeFormat,
    #[error("le numéro NATINF doit être un nombre entier entre 1 et 99999")]
    NatinfFormat,
    #[error(
        "le numéro parquet doit comporter de 4 à 32 caractères (chiffres, lettres, « - » ou « / »)"
    )]
    ParquetNumberFormat,
}

/// The Luhn checksum used by SIREN and SIRET: doubling every second digit from the right.
fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(position, byte)| {
            let digit = u32::from(byte - b'0');
            if position % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Accepts the spaces that people type in SIREN/SIRET ("130 025 265 00013").
fn digits_only(input: &str) -> String {
    input.chars().filter(|c| !c.is_whitespace()).collect()
}

/// SIREN of La Poste: its establishments' SIRETs do not follow Luhn but a sum-of-digits rule.
const LA_POSTE_SIREN: &str = "356000000";

/// The 9-digit identifier of a legal entity (répertoire SIRENE).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Siren(String);

impl Siren {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Siren {
    type Err = IdentifierError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let value = digits_only(input);
        if value.len() != 9 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdentifierError::SirenLength);
        }
        if !luhn_valid(&value) {
            return Err(IdentifierError::LuhnChecksum);
        }
        Ok(Siren(value))
    }
}

/// The 14-digit identifier of an establishment: SIREN + NIC.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Siret(String);

impl Siret {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn siren(&self) -> Siren {
        Siren(self.0[..9].to_string())
    }
}

impl FromStr for Siret {
    type Err = IdentifierError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let value = digits_only(input);
        if value.len() != 14 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdentifierError::SiretLength);
        }
        let valid =
            if value.starts_with(LA_POSTE_SIREN) && value != format!("{LA_POSTE_SIREN}00012") {
                // La Poste's establishments: the sum of the digits is a multiple of 5.
                value
                    .bytes()
                    .map(|b| u32::from(b - b'0'))
                    .sum::<u32>()
                    .is_multiple_of(5)
            } else {
                luhn_valid(&value)
            };
        if !valid {
            return Err(IdentifierError::LuhnChecksum);
        }
        Ok(Siret(value))
    }
}

/// Code officiel géographique of a commune: two characters of département (or 2A/2B for Corsica,
/// three for overseas 97x/98x) then the commune's number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InseeCode(String);

impl InseeCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The département code: "41", "2A", "971".
    pub fn departement(&self) -> &str {
        if self.0.starts_with("97") || self.0.starts_with("98") {
            &self.0[..3]
        } else {
            &self.0[..2]
        }
    }
}

impl FromStr for InseeCode {
    type Err = IdentifierError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let value = input.trim().to_ascii_uppercase();
        let bytes = value.as_bytes();
        if bytes.len() != 5 || !bytes[2..].iter().all(u8::is_ascii_digit) {
            return Err(IdentifierError::InseeFormat);
        }
        let departement_ok = match &value[..2] {
            "2A" | "2B" => true,
            "20" => false, // Corsica has been 2A/2B since 1976.
            "00" => false,
            "97" => (b'1'..=b'8').contains(&bytes[2]),
            "98" => (b'4'..=b'9').contains(&bytes[2]),
            prefix => prefix.bytes().all(|b| b.is_ascii_digit()),
        };
        if !departement_ok {
            return Err(IdentifierError::InseeFormat);
        }
        Ok(InseeCode(value))
    }
}

/// A NATINF number: the national offence nomenclature of the Ministry of Justice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct NatinfCode(u32);

impl NatinfCode {
    pub fn new(value: i64) -> Result<Self, IdentifierError> {
        if (1..=99_999).contains(&value) {
            Ok(NatinfCode(value as u32))
        } else {
            Err(IdentifierError::NatinfFormat)
        }
    }

    pub fn value(self) -> u32 {
        self.0
    }
}

impl FromStr for NatinfCode {
    type Err = IdentifierError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let value: i64 = input
            .trim()
            .parse()
            .map_err(|_| IdentifierError::NatinfFormat)?;
        NatinfCode::new(value)
    }
}

/// The parquet's own registration number (numéro parquet), unique within a parquet. Formats vary
/// between courts and software (e.g. "26015000123", "26/015/123"), so only the shape is checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ParquetNumber(String);

impl ParquetNumber {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ParquetNumber {
    type Err = IdentifierError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let value = input.trim().to_ascii_uppercase();
        let shape_ok = (4..=32).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'/')
            && value.bytes().any(|b| b.is_ascii_digit())
            && value.as_bytes()[0].is_ascii_alphanumeric();
        if !shape_ok {
            return Err(IdentifierError::ParquetNumberFormat);
        }
        Ok(ParquetNumber(value))
    }
}

macro_rules! string_newtype_conversions {
    ($($name:ident),*) => {$(
        impl TryFrom<String> for $name {
            type Error = IdentifierError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                value.parse()
            }
        }
        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
string_newtype_conversions!(Siren, Siret, InseeCode, ParquetNumber);

impl TryFrom<i64> for NatinfCode {
    type Error = IdentifierError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        NatinfCode::new(value)
    }
}

impl From<NatinfCode> for i64 {
    fn from(value: NatinfCode) -> i64 {
        i64::from(value.0)
    }
}

impl fmt::Display for NatinfCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siren_accepts_valid_and_spaced_numbers() {
        // DINUM and INSEE.
        assert_eq!(
            "130025265".parse::<Siren>().map(|s| s.0),
            Ok("130025265".into())
        );
        assert!("120 027 016".parse::<Siren>().is_ok());
    }

    #[test]
    fn siren_rejects_bad_checksum_and_length() {
        assert_eq!(
            "130025266".parse::<Siren>(),
            Err(IdentifierError::LuhnChecksum)
        );
        assert_eq!(
            "13002526".parse::<Siren>(),
            Err(IdentifierError::SirenLength)
        );
        assert_eq!(
            "13002526a".parse::<Siren>(),
            Err(IdentifierError::SirenLength)
        );
    }

    #[test]
    fn siret_luhn_and_la_poste_exception() {
        let dinum: Siret = "130 025 265 00013".parse().expect("valid SIRET");
        assert_eq!(dinum.siren().as_str(), "130025265");
        assert_eq!(
            "13002526500014".parse::<Siret>(),
            Err(IdentifierError::LuhnChecksum)
        );
    }

    #[test]
    fn la_poste_establishments_use_sum_of_digits() {
        // 3+5+6 = 14; add NIC digits to reach a multiple of 5.
        assert!("35600000000010".parse::<Siret>().is_ok()); // 14 + 1 = 15
        assert_eq!(
            "35600000000011".parse::<Siret>(),
            Err(IdentifierError::LuhnChecksum)
        ); // 16
           // This NIC is not Luhn-valid, so only the La Poste rule can accept it.
        assert!(!luhn_valid("35600000000010"));
    }

    #[test]
    fn insee_codes_of_every_shape() {
        for good in [
            "41018", "59350", "2A004", "2b033", "97101", "97611", "98818", "01001",
        ] {
            assert!(good.parse::<InseeCode>().is_ok(), "{good}");
        }
        for bad in [
            "4101", "410188", "20004", "2C004", "97901", "00001", "4101A", "98301", "",
        ] {
            assert!(bad.parse::<InseeCode>().is_err(), "{bad}");
        }
        assert_eq!(
            "2b033"
                .parse::<InseeCode>()
                .map(|c| c.departement().to_string()),
            Ok("2B".into())
        );
        assert_eq!(
            "97101"
                .parse::<InseeCode>()
                .map(|c| c.departement().to_string()),
            Ok("971".into())
        );
    }

    #[test]
    fn natinf_bounds() {
        assert_eq!(
            "7151".parse::<NatinfCode>().map(NatinfCode::value),
            Ok(7151)
        );
        assert!("0".parse::<NatinfCode>().is_err());
        assert!("100000".parse::<NatinfCode>().is_err());
        assert!("VOL".parse::<NatinfCode>().is_err());
    }

    #[test]
    fn parquet_numbers() {
        assert_eq!(
            "26015000123".parse::<ParquetNumber>().map(String::from),
            Ok("26015000123".into())
        );
        assert_eq!(
            " 26/015/123 ".parse::<ParquetNumber>().map(String::from),
            Ok("26/015/123".into())
        );
        for bad in [
            "",
            "12",
            "ABCDE",
            "-1234",
            "12 34",
            "1234567890123456789012345678901234",
        ] {
            assert!(bad.parse::<ParquetNumber>().is_err(), "{bad}");
        }
    }
}
