//! Which parquet is competent for a commune. The Ministry publishes the official table; until an
//! operator imports it, the platform derives the answer from geography: exact in départements
//! with a single tribunal judiciaire, an arrondissement-based estimate elsewhere.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// How the competent parquet of a referral was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Competence {
    /// From the Ministry's table, or certain (the département has a single tribunal).
    Official,
    /// Derived from the arrondissement: to be confirmed.
    Estimated,
    /// Chosen by the sender, with a reason, instead of the proposed parquet.
    Chosen,
}

impl Competence {
    pub fn as_str(self) -> &'static str {
        match self {
            Competence::Official => "official",
            Competence::Estimated => "estimated",
            Competence::Chosen => "chosen",
        }
    }

    pub fn parse(value: &str) -> Option<Competence> {
        [
            Competence::Official,
            Competence::Estimated,
            Competence::Chosen,
        ]
        .into_iter()
        .find(|c| c.as_str() == value)
    }

    pub fn label_fr(self) -> &'static str {
        match self {
            Competence::Official => "compétence officielle",
            Competence::Estimated => "compétence estimée, à confirmer",
            Competence::Chosen => "parquet choisi par l'expéditeur",
        }
    }
}

/// A commune as far as competence is concerned.
#[derive(Debug, Clone)]
pub struct CommuneGeo {
    pub insee: String,
    pub departement: String,
    /// Arrondissement départemental, e.g. "411"; empty for some overseas collectivities.
    pub arrondissement: String,
    /// Parent commune of delegated/associated communes and municipal arrondissements.
    pub parent: Option<String>,
}

/// A tribunal judiciaire (or tribunal de première instance) and where it sits.
#[derive(Debug, Clone)]
pub struct CourtSeat {
    pub court_key: String,
    /// Département of the seat (needed for courts whose seat commune is unknown).
    pub departement: String,
    pub seat_insee: Option<String>,
}

/// Derives commune → (court, competence) for every commune it can place.
pub fn derive_competences(
    communes: &[CommuneGeo],
    courts: &[CourtSeat],
) -> HashMap<String, (String, Competence)> {
    let by_insee: HashMap<&str, &CommuneGeo> =
        communes.iter().map(|c| (c.insee.as_str(), c)).collect();
    let mut courts_by_departement: HashMap<&str, Vec<&CourtSeat>> = HashMap::new();
    for court in courts {
        courts_by_departement
            .entry(court.departement.as_str())
            .or_default()
            .push(court);
    }
    let seat_arrondissement = |court: &CourtSeat| -> Option<&str> {
        court
            .seat_insee
            .as_deref()
            .and_then(|insee| by_insee.get(insee))
            .map(|c| c.arrondissement.as_str())
    };

    let mut result = HashMap::new();
    for commune in communes {
        let Some(candidates) = courts_by_departement.get(commune.departement.as_str()) else {
            continue;
        };
        let answer = match candidates.as_slice() {
            [only] => (only.court_key.clone(), Competence::Official),
            several => {
                let arrondissement = if commune.arrondissement.is_empty() {
                    commune
                        .parent
                        .as_deref()
                        .and_then(|p| by_insee.get(p))
                        .map(|p| p.arrondissement.as_str())
                        .unwrap_or("")
                } else {
                    commune.arrondissement.as_str()
                };
                let in_arrondissement = several
                    .iter()
                    .find(|court| seat_arrondissement(court) == Some(arrondissement));
                // Without a seat in its arrondissement, a commune most likely goes to the court
                // of the first seat listed for the département (courts are listed by seat code,
                // so the prefecture's court usually comes first); still an estimate.
                let chosen = in_arrondissement.or_else(|| several.first());
                match chosen {
                    Some(court) => (court.court_key.clone(), Competence::Estimated),
                    None => continue,
                }
            }
        };
        result.insert(commune.insee.clone(), answer);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commune(insee: &str, departement: &str, arrondissement: &str) -> CommuneGeo {
        CommuneGeo {
            insee: insee.into(),
            departement: departement.into(),
            arrondissement: arrondissement.into(),
            parent: None,
        }
    }

    fn court(key: &str, departement: &str, seat: &str) -> CourtSeat {
        CourtSeat {
            court_key: key.into(),
            departement: departement.into(),
            seat_insee: Some(seat.into()),
        }
    }

    #[test]
    fn single_court_departement_is_exact_and_others_are_estimated() {
        let communes = vec![
            commune("41018", "41", "411"),
            commune("41269", "41", "413"),
            commune("59350", "59", "595"),
            commune("59178", "59", "592"),
            commune("59009", "59", "595"),
            commune("59999", "59", "599"),
        ];
        let courts = vec![
            court("blois", "41", "41018"),
            court("lille", "59", "59350"),
            court("douai", "59", "59178"),
        ];
        let map = derive_competences(&communes, &courts);
        assert_eq!(map["41269"], ("blois".to_string(), Competence::Official));
        assert_eq!(map["59009"], ("lille".to_string(), Competence::Estimated));
        assert_eq!(map["59178"], ("douai".to_string(), Competence::Estimated));
        // No seat in its arrondissement: the first court of the département, still estimated.
        assert_eq!(map["59999"].1, Competence::Estimated);
    }

    #[test]
    fn delegated_commune_without_arrondissement_uses_its_parent() {
        let mut delegated = commune("59999", "59", "");
        delegated.parent = Some("59178".into());
        let communes = vec![
            commune("59350", "59", "595"),
            commune("59178", "59", "592"),
            delegated,
        ];
        let courts = vec![court("lille", "59", "59350"), court("douai", "59", "59178")];
        assert_eq!(derive_competences(&communes, &courts)["59999"].0, "douai");
    }
}
