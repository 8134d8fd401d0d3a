//! Prescription de l'action publique: the date after which the facts can no longer be
//! prosecuted. General rules (art. 7, 8 and 9 CPP): 20 years for crimes, 6 for délits, 1 for
//! contraventions, counted from the last day of the facts; the most serious offence decides.

use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};

/// The gravity of an offence, as far as the limitation period is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gravity {
    /// Natures the rules do not rank (e.g. "Infraction civile").
    Unranked,
    Contravention,
    Delit,
    Crime,
}

impl Gravity {
    /// Ranks a NATINF nature label: "Crime", "Délit", "Délit douanier de classe 1",
    /// "Contravention de classe 5", "Contravention douanière de classe 5"… Unknown natures are
    /// accepted and left unranked.
    pub fn from_nature(nature: &str) -> Gravity {
        let lower = nature.trim().to_lowercase();
        if lower.starts_with("crime") {
            Gravity::Crime
        } else if lower.starts_with("délit") || lower.starts_with("delit") {
            Gravity::Delit
        } else if lower.starts_with("contravention") {
            Gravity::Contravention
        } else {
            Gravity::Unranked
        }
    }

    pub fn limitation_years(self) -> Option<u32> {
        match self {
            Gravity::Crime => Some(20),
            Gravity::Delit => Some(6),
            Gravity::Contravention => Some(1),
            Gravity::Unranked => None,
        }
    }

    pub fn label_fr(self) -> &'static str {
        match self {
            Gravity::Crime => "crime",
            Gravity::Delit => "délit",
            Gravity::Contravention => "contravention",
            Gravity::Unranked => "autre",
        }
    }
}

/// The limitation date of a referral: `None` when the facts have no date or no offence is ranked.
/// `last_day_of_facts` is the end of the period, or its start when the facts have no end date.
pub fn limitation_date(
    last_day_of_facts: Option<NaiveDate>,
    natures: &[&str],
) -> Option<NaiveDate> {
    let gravity = natures
        .iter()
        .map(|nature| Gravity::from_nature(nature))
        .max()?;
    let years = gravity.limitation_years()?;
    // Months::new(12 * years) keeps 29 February within February (28th) in non-leap years.
    last_day_of_facts?.checked_add_months(Months::new(12 * years))
}

/// Whether the only chosen offences are contraventions: article 40 concerns crimes and délits,
/// so the form warns the agent.
pub fn only_contraventions(natures: &[&str]) -> bool {
    !natures.is_empty()
        && natures
            .iter()
            .all(|nature| Gravity::from_nature(nature) == Gravity::Contravention)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    #[test]
    fn ranks_natures() {
        assert_eq!(Gravity::from_nature("Crime"), Gravity::Crime);
        assert_eq!(Gravity::from_nature("Délit"), Gravity::Delit);
        assert_eq!(
            Gravity::from_nature("Délit douanier de classe 1"),
            Gravity::Delit
        );
        assert_eq!(Gravity::from_nature("Délit fiscal"), Gravity::Delit);
        assert_eq!(
            Gravity::from_nature("Contravention de classe 5"),
            Gravity::Contravention
        );
        assert_eq!(
            Gravity::from_nature("Contravention douanière de classe 5"),
            Gravity::Contravention
        );
        assert_eq!(Gravity::from_nature("Infraction civile"), Gravity::Unranked);
    }

    #[test]
    fn periods_by_gravity() {
        let end = date(2026, 4, 30);
        assert_eq!(
            limitation_date(Some(end), &["Contravention de classe 3"]),
            Some(date(2027, 4, 30))
        );
        assert_eq!(
            limitation_date(Some(end), &["Délit"]),
            Some(date(2032, 4, 30))
        );
        assert_eq!(
            limitation_date(Some(end), &["Crime"]),
            Some(date(2046, 4, 30))
        );
    }

    #[test]
    fn the_most_serious_offence_decides() {
        let end = date(2026, 1, 15);
        assert_eq!(
            limitation_date(
                Some(end),
                &["Contravention de classe 5", "Délit", "Infraction civile"]
            ),
            Some(date(2032, 1, 15))
        );
        assert_eq!(
            limitation_date(Some(end), &["Délit", "Crime"]),
            Some(date(2046, 1, 15))
        );
    }

    #[test]
    fn no_date_or_no_ranked_offence_gives_no_limitation() {
        assert_eq!(limitation_date(None, &["Délit"]), None);
        assert_eq!(limitation_date(Some(date(2026, 1, 1)), &[]), None);
        assert_eq!(
            limitation_date(Some(date(2026, 1, 1)), &["Infraction civile"]),
            None
        );
    }

    #[test]
    fn leap_day() {
        assert_eq!(
            limitation_date(Some(date(2024, 2, 29)), &["Contravention de classe 1"]),
            Some(date(2025, 2, 28))
        );
        assert_eq!(
            limitation_date(Some(date(2024, 2, 29)), &["Crime"]),
            Some(date(2044, 2, 29))
        );
    }

    #[test]
    fn contravention_warning() {
        assert!(only_contraventions(&[
            "Contravention de classe 5",
            "Contravention de classe 1"
        ]));
        assert!(!only_contraventions(&[
            "Contravention de classe 5",
            "Délit"
        ]));
        assert!(!only_contraventions(&[]));
    }
}
