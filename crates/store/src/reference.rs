//! Reference data: communes, courts (parquets), NATINF offences, dismissal reasons and the
//! commune → parquet competence table. The built-in editions are embedded in the binary; the
//! importers take the Ministry's official files, in whatever encoding they come.

use crate::{
    on_pool, on_writer, CommuneHit, DismissalReason, KnownCommune, Offence, Organisation,
    ParquetRef, ReferralParquet, Store, StoreError, StoreResult,
};
use chrono::{DateTime, Utc};
use domain::competence::{derive_competences, CommuneGeo, Competence, CourtSeat};
use domain::text::search_key;
use domain::InseeCode;
use flate2::read::GzDecoder;
use std::collections::HashMap;
use std::io::Read;
use uuid::Uuid;

static COMMUNES_GZ: &[u8] = include_bytes!("../../../reference-data/communes-cog2026.csv.gz");
static COURTS_GZ: &[u8] = include_bytes!("../../../reference-data/tribunaux-judiciaires.csv.gz");
static NATINF_GZ: &[u8] = include_bytes!("../../../reference-data/natinf.csv.gz");
static DISMISSAL_REASONS_GZ: &[u8] =
    include_bytes!("../../../reference-data/motifs-classement.csv.gz");

/// Rows per multi-row INSERT: well under both backends' bind-parameter limits.
const BATCH: usize = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ReferenceCounts {
    pub communes: i64,
    pub parquets: i64,
    pub offences: i64,
    pub dismissal_reasons: i64,
    pub competences_official: i64,
    pub competences_estimated: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum CompetenceImportError {
    #[error("le fichier n'est pas un CSV lisible : {0}")]
    Unreadable(String),
    #[error("colonne « {0} » absente de l'en-tête ; l'en-tête attendu est celui du fichier du ministère (Commune;Libellé Commune;…;N° TJ;Tribunal judiciaire compétent;…)")]
    MissingColumn(&'static str),
    #[error("contrôle des communes connues échoué, fichier refusé (lignes décalées ?) : {0}")]
    KnownCommuneMismatch(String),
    #[error("le fichier ne contient aucune ligne exploitable")]
    Empty,
}

fn gunzip(bytes: &[u8]) -> StoreResult<String> {
    let mut text = String::new();
    GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .map_err(|e| StoreError::Reference(e.to_string()))?;
    Ok(text)
}

/// Decodes a text file that may be UTF-8, Windows-1252/Latin-1 or IBM cp850. cp850 puts its
/// accented letters in 0x80–0x9F, where Latin-1 has only control characters, which tells them
/// apart.
pub fn decode_legacy_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        return text.to_string();
    }
    let c1_controls = bytes
        .iter()
        .filter(|&&b| (0x80..=0x9F).contains(&b))
        .count();
    let high_latin = bytes.iter().filter(|&&b| b >= 0xC0).count();
    if c1_controls > high_latin {
        oem_cp::decode_string_complete_table(bytes, &oem_cp::code_table::DECODING_TABLE_CP850)
    } else {
        encoding_rs::WINDOWS_1252.decode(bytes).0.into_owned()
    }
}

fn csv_reader(text: &str) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .delimiter(b';')
        .flexible(true)
        .from_reader(text.as_bytes())
}

struct CommuneRow {
    insee: String,
    name: String,
    kind: String,
    parent: Option<String>,
    departement: String,
    arrondissement: String,
    postal_codes: String,
    population: Option<i64>,
}

struct CourtRow {
    code: String,
    name: String,
    departement: String,
    seat_insee: Option<String>,
}

/// The deterministic id of a court's parquet, so that every installation and every re-seed
/// agrees on it.
pub fn parquet_id_for_court(court_code: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("infoparquet:court:{court_code}").as_bytes(),
    )
}

/// "Tribunal judiciaire de Blois" → "Parquet du tribunal judiciaire de Blois".
fn parquet_name(court_name: &str) -> String {
    let mut chars = court_name.chars();
    let lowered: String = chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default();
    format!("Parquet du {lowered}")
}

fn parse_communes() -> StoreResult<Vec<CommuneRow>> {
    let text = gunzip(COMMUNES_GZ)?;
    let mut rows = Vec::new();
    for record in csv_reader(&text).records() {
        let r = record.map_err(|e| StoreError::Reference(e.to_string()))?;
        let get = |i: usize| r.get(i).unwrap_or("").to_string();
        rows.push(CommuneRow {
            insee: get(0),
            name: get(1),
            kind: get(2),
            parent: Some(get(3)).filter(|p| !p.is_empty()),
            departement: get(4),
            arrondissement: get(5),
            postal_codes: get(7),
            population: get(8).parse().ok(),
        });
    }
    Ok(rows)
}

fn parse_courts() -> StoreResult<Vec<CourtRow>> {
    let text = gunzip(COURTS_GZ)?;
    let mut rows = Vec::new();
    for record in csv_reader(&text).records() {
        let r = record.map_err(|e| StoreError::Reference(e.to_string()))?;
        let name = r.get(2).unwrap_or("").to_string();
        let seat = r.get(6).unwrap_or("").to_string();
        let departement = match seat.parse::<InseeCode>() {
            Ok(code) => code.departement().to_string(),
            // The one court without a seat commune in the source.
            Err(_) if name.contains("Saint-Pierre-et-Miquelon") => "975".to_string(),
            Err(_) => String::new(),
        };
        rows.push(CourtRow {
            code: r.get(1).unwrap_or("").to_string(),
            name,
            departement,
            seat_insee: Some(seat).filter(|s| !s.is_empty()),
        });
    }
    Ok(rows)
}

/// Parses a NATINF file: the Ministry's header or the project's own, five columns in the same
/// order (number; nature; qualification; defined by; punished by).
pub fn parse_offences(text: &str) -> Result<Vec<Offence>, String> {
    let mut rows = Vec::new();
    for (line, record) in csv_reader(text).records().enumerate() {
        let r = record.map_err(|e| format!("ligne {}: {e}", line + 2))?;
        let code_text = r.get(0).unwrap_or("").trim();
        if code_text.is_empty() {
            continue;
        }
        let code: i64 = code_text.parse().map_err(|_| {
            format!(
                "ligne {} : numéro NATINF « {code_text} » invalide",
                line + 2
            )
        })?;
        if r.len() < 3 {
            return Err(format!(
                "ligne {} : 5 colonnes attendues, {} trouvées",
                line + 2,
                r.len()
            ));
        }
        let field = |i: usize| r.get(i).unwrap_or("").trim().to_string();
        rows.push(Offence {
            code,
            nature: field(1),
            label: field(2),
            defined_by: field(3),
            punished_by: field(4),
        });
    }
    if rows.is_empty() {
        return Err("aucune infraction trouvée dans le fichier".into());
    }
    Ok(rows)
}

/// Known communes and a word their court's name must contain: a file with shifted rows fails.
const KNOWN_COMPETENCES: &[(&[&str], &str)] = &[
    (&["33063"], "Bordeaux"),
    (&["75056", "75101", "75108", "75120"], "Paris"),
    (&["69381", "69383"], "Lyon"),
    (&["13201", "13208"], "Marseille"),
    (&["01187"], "Bourg-en-Bresse"),
    (&["41018"], "Blois"),
    (&["59350"], "Lille"),
];

impl Store {
    /// Loads the built-in reference data where it is missing. Idempotent: a second call only
    /// counts.
    pub async fn load_reference_data(&self) -> StoreResult<ReferenceCounts> {
        let counts = self.reference_counts().await?;
        let courts = parse_courts()?;
        if counts.parquets < courts.len() as i64 {
            let now = Utc::now();
            for court in &courts {
                self.upsert_organisation(&Organisation {
                    id: parquet_id_for_court(&court.code),
                    kind: "parquet".into(),
                    name: parquet_name(&court.name),
                    siret: None,
                    court_code: Some(court.code.clone()),
                    departement: Some(court.departement.clone()),
                    requires_validation: false,
                    created_at: now,
                })
                .await?;
            }
        }
        if counts.communes == 0 {
            let mut communes = parse_communes()?;
            // Delegated communes may share the code of the commune they merged into: the current
            // commune comes first and keeps the code.
            communes.sort_by_key(|c| c.kind != "commune-actuelle");
            self.insert_communes(&communes).await?;
        }
        if counts.offences == 0 {
            let offences = parse_offences(&gunzip(NATINF_GZ)?).map_err(StoreError::Reference)?;
            self.upsert_offences(&offences).await?;
        }
        if counts.dismissal_reasons == 0 {
            self.insert_dismissal_reasons().await?;
        }
        if counts.competences_official + counts.competences_estimated == 0 {
            self.insert_derived_competences(&courts).await?;
        }
        self.reference_counts().await
    }

    pub async fn reference_counts(&self) -> StoreResult<ReferenceCounts> {
        let sql = "SELECT \
            (SELECT COUNT(*) FROM communes), \
            (SELECT COUNT(*) FROM organisations WHERE kind = 'parquet'), \
            (SELECT COUNT(*) FROM offences), \
            (SELECT COUNT(*) FROM dismissal_reasons), \
            (SELECT COUNT(*) FROM competences WHERE source = 'official'), \
            (SELECT COUNT(*) FROM competences WHERE source = 'estimated')";
        let (
            communes,
            parquets,
            offences,
            dismissal_reasons,
            competences_official,
            competences_estimated,
        ): (i64, i64, i64, i64, i64, i64) =
            on_pool!(self, |pool| sqlx::query_as(sql).fetch_one(pool).await)?;
        Ok(ReferenceCounts {
            communes,
            parquets,
            offences,
            dismissal_reasons,
            competences_official,
            competences_estimated,
        })
    }

    async fn insert_communes(&self, rows: &[CommuneRow]) -> StoreResult<()> {
        on_writer!(self, |conn, Db| {
            let mut tx = conn.begin().await?;
            for chunk in rows.chunks(BATCH) {
                let mut query = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO communes (insee, name, search_name, kind, parent_insee, departement, arrondissement, postal_codes, population) ",
                );
                query.push_values(chunk, |mut b, c| {
                    b.push_bind(c.insee.clone())
                        .push_bind(c.name.clone())
                        .push_bind(search_key(&c.name))
                        .push_bind(c.kind.clone())
                        .push_bind(c.parent.clone())
                        .push_bind(c.departement.clone())
                        .push_bind(c.arrondissement.clone())
                        .push_bind(c.postal_codes.clone())
                        .push_bind(c.population);
                });
                query.push(" ON CONFLICT (insee) DO NOTHING");
                query.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(())
    }

    /// Inserts or replaces offences by number (the official file is the authority).
    pub async fn upsert_offences(&self, rows: &[Offence]) -> StoreResult<()> {
        on_writer!(self, |conn, Db| {
            let mut tx = conn.begin().await?;
            for chunk in rows.chunks(BATCH) {
                let mut query = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO offences (code, nature, label, search_label, defined_by, punished_by) ",
                );
                // A file may repeat a number; the last row wins, as with ON CONFLICT.
                let mut unique: Vec<&Offence> = Vec::with_capacity(chunk.len());
                for offence in chunk {
                    match unique.iter_mut().find(|o| o.code == offence.code) {
                        Some(slot) => *slot = offence,
                        None => unique.push(offence),
                    }
                }
                query.push_values(unique, |mut b, o| {
                    b.push_bind(o.code)
                        .push_bind(o.nature.clone())
                        .push_bind(o.label.clone())
                        .push_bind(search_key(&o.label))
                        .push_bind(o.defined_by.clone())
                        .push_bind(o.punished_by.clone());
                });
                query.push(
                    " ON CONFLICT (code) DO UPDATE SET nature = excluded.nature, label = excluded.label, \
                     search_label = excluded.search_label, defined_by = excluded.defined_by, punished_by = excluded.punished_by",
                );
                query.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(())
    }

    async fn insert_dismissal_reasons(&self) -> StoreResult<()> {
        let text = gunzip(DISMISSAL_REASONS_GZ)?;
        let mut reasons = Vec::new();
        for record in csv_reader(&text).records() {
            let r = record.map_err(|e| StoreError::Reference(e.to_string()))?;
            reasons.push((
                r.get(0).unwrap_or("").to_string(),
                r.get(1).unwrap_or("").to_string(),
            ));
        }
        on_writer!(self, |conn, Db| {
            let mut query =
                sqlx::QueryBuilder::<Db>::new("INSERT INTO dismissal_reasons (code, label) ");
            query.push_values(&reasons, |mut b, (code, label)| {
                b.push_bind(code.clone()).push_bind(label.clone());
            });
            query.push(" ON CONFLICT (code) DO NOTHING");
            query.build().execute(conn).await.map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    async fn insert_derived_competences(&self, courts: &[CourtRow]) -> StoreResult<()> {
        let communes: Vec<(String, String, String, Option<String>)> =
            on_pool!(self, |pool| sqlx::query_as(
                "SELECT insee, departement, arrondissement, parent_insee FROM communes"
            )
            .fetch_all(pool)
            .await)?;
        let geo: Vec<CommuneGeo> = communes
            .into_iter()
            .map(|(insee, departement, arrondissement, parent)| CommuneGeo {
                insee,
                departement,
                arrondissement,
                parent,
            })
            .collect();
        let seats: Vec<CourtSeat> = courts
            .iter()
            .map(|c| CourtSeat {
                court_key: c.code.clone(),
                departement: c.departement.clone(),
                seat_insee: c.seat_insee.clone(),
            })
            .collect();
        let mut derived: Vec<(String, Uuid, &'static str)> = derive_competences(&geo, &seats)
            .into_iter()
            .map(|(insee, (court, competence))| {
                (insee, parquet_id_for_court(&court), competence.as_str())
            })
            .collect();
        derived.sort();
        self.write_competences(&derived).await
    }

    async fn write_competences(&self, rows: &[(String, Uuid, &'static str)]) -> StoreResult<()> {
        on_writer!(self, |conn, Db| {
            let mut tx = conn.begin().await?;
            for chunk in rows.chunks(BATCH) {
                let mut query = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO competences (insee, parquet_id, source) ",
                );
                query.push_values(chunk, |mut b, (insee, parquet, source)| {
                    b.push_bind(insee.clone())
                        .push_bind(*parquet)
                        .push_bind(*source);
                });
                query.push(" ON CONFLICT (insee) DO UPDATE SET parquet_id = excluded.parquet_id, source = excluded.source");
                query.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(())
    }

    /// Imports the Ministry's competence file (UTF-8 or cp1252). The whole file is checked before
    /// anything is written: a file that fails the known-commune checks changes nothing.
    pub async fn import_competences(&self, bytes: &[u8]) -> Result<usize, ImportFailure> {
        let text = decode_legacy_text(bytes);
        let mut reader = csv_reader(&text);
        let headers = reader
            .headers()
            .map_err(|e| CompetenceImportError::Unreadable(e.to_string()))?
            .clone();
        let column = |wanted: &'static str| -> Result<usize, CompetenceImportError> {
            headers
                .iter()
                .position(|h| search_key(h) == search_key(wanted))
                .ok_or(CompetenceImportError::MissingColumn(wanted))
        };
        let commune_col = column("Commune")?;
        let court_col = column("N° TJ")?;
        let court_name_col = column("Tribunal judiciaire compétent")?;

        let courts: HashMap<String, Uuid> = parse_courts()
            .map_err(ImportFailure::Store)?
            .into_iter()
            .map(|c| (c.code.clone(), parquet_id_for_court(&c.code)))
            .collect();
        let mut rows: Vec<(String, Uuid, &'static str)> = Vec::new();
        let mut names: HashMap<String, String> = HashMap::new();
        let mut skipped = 0usize;
        for record in reader.records() {
            let r = record.map_err(|e| CompetenceImportError::Unreadable(e.to_string()))?;
            let (Some(insee), Some(court)) = (r.get(commune_col), r.get(court_col)) else {
                skipped += 1;
                continue;
            };
            let (Ok(insee), Some(parquet)) =
                (insee.trim().parse::<InseeCode>(), courts.get(court.trim()))
            else {
                skipped += 1;
                continue;
            };
            names.insert(
                insee.to_string(),
                r.get(court_name_col).unwrap_or("").to_string(),
            );
            rows.push((insee.to_string(), *parquet, Competence::Official.as_str()));
        }
        if rows.is_empty() {
            return Err(CompetenceImportError::Empty.into());
        }
        for (codes, expected) in KNOWN_COMPETENCES {
            let found: Vec<&String> = codes.iter().filter_map(|code| names.get(*code)).collect();
            if found.is_empty() {
                return Err(CompetenceImportError::KnownCommuneMismatch(format!(
                    "commune {} absente",
                    codes[0]
                ))
                .into());
            }
            if let Some(bad) = found
                .iter()
                .find(|name| !search_key(name).contains(&search_key(expected)))
            {
                return Err(CompetenceImportError::KnownCommuneMismatch(format!(
                    "la commune {} est rattachée à « {bad} » au lieu du tribunal de {expected}",
                    codes[0]
                ))
                .into());
            }
        }
        if skipped > rows.len() / 10 {
            return Err(CompetenceImportError::KnownCommuneMismatch(format!(
                "{skipped} lignes sans code commune ou tribunal reconnu"
            ))
            .into());
        }
        self.write_competences(&rows)
            .await
            .map_err(ImportFailure::Store)?;
        Ok(rows.len())
    }

    /// Communes whose name, INSEE code or postal code matches `query`, with their parquet.
    pub async fn search_communes(&self, query: &str, limit: i64) -> StoreResult<Vec<CommuneHit>> {
        let query = query.trim();
        if query.is_empty() {
            return Ok(Vec::new());
        }
        let base = "SELECT c.insee, c.name, c.departement, c.postal_codes, o.id, o.name, k.source \
                    FROM communes c LEFT JOIN competences k ON k.insee = c.insee \
                    LEFT JOIN organisations o ON o.id = k.parquet_id ";
        let looks_like_code = query.len() <= 5
            && query.chars().all(|c| c.is_ascii_alphanumeric())
            && query.chars().any(|c| c.is_ascii_digit());
        type HitRow = (
            String,
            String,
            String,
            String,
            Option<Uuid>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<HitRow> = if looks_like_code {
            let code = query.to_ascii_uppercase();
            let sql = format!(
                "{base} WHERE c.insee = $1 OR ('|' || c.postal_codes || '|') LIKE $2 OR c.insee LIKE $3 \
                 ORDER BY CASE WHEN c.insee = $1 THEN 0 ELSE 1 END, c.population DESC NULLS LAST, c.insee LIMIT $4"
            );
            on_pool!(self, |pool| sqlx::query_as(&sql)
                .bind(&code)
                .bind(format!("%|{code}|%"))
                .bind(format!("{code}%"))
                .bind(limit)
                .fetch_all(pool)
                .await)?
        } else {
            let key = search_key(query);
            let sql = format!(
                "{base} WHERE c.search_name LIKE $1 OR c.search_name LIKE $2 \
                 ORDER BY CASE WHEN c.search_name = $3 THEN 0 WHEN c.search_name LIKE $1 THEN 1 ELSE 2 END, \
                 c.population DESC NULLS LAST, c.insee LIMIT $4"
            );
            on_pool!(self, |pool| sqlx::query_as(&sql)
                .bind(format!("{key}%"))
                .bind(format!("% {key}%"))
                .bind(&key)
                .bind(limit)
                .fetch_all(pool)
                .await)?
        };
        Ok(rows
            .into_iter()
            .map(
                |(insee, name, departement, postal_codes, parquet_id, parquet_name, source)| {
                    CommuneHit {
                        insee,
                        name,
                        departement,
                        postal_codes: postal_codes
                            .split('|')
                            .filter(|p| !p.is_empty())
                            .map(str::to_string)
                            .collect(),
                        parquet: match (parquet_id, parquet_name, source) {
                            (Some(id), Some(name), Some(competence)) => Some(ParquetRef {
                                id,
                                name,
                                competence,
                            }),
                            _ => None,
                        },
                    }
                },
            )
            .collect())
    }

    /// The competent parquet of a commune, if known.
    pub async fn competence_of(&self, insee: &str) -> StoreResult<Option<ParquetRef>> {
        let sql = "SELECT o.id, o.name, k.source FROM competences k JOIN organisations o ON o.id = k.parquet_id WHERE k.insee = $1";
        let row: Option<(Uuid, String, String)> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(insee)
            .fetch_optional(pool)
            .await)?;
        Ok(row.map(|(id, name, competence)| ParquetRef {
            id,
            name,
            competence,
        }))
    }

    /// A commune that exists, with its competent parquet if known: what checking a place and
    /// proposing its parquet need, in one statement.
    pub async fn known_commune(&self, insee: &str) -> StoreResult<Option<KnownCommune>> {
        let sql = format!(
            "SELECT c.name AS commune_name, k.source, {PARQUET_OF_REFERRAL} FROM communes c \
             LEFT JOIN competences k ON k.insee = c.insee LEFT JOIN organisations o ON o.id = k.parquet_id \
             LEFT JOIN parquet_settings s ON s.parquet_id = o.id WHERE c.insee = $1"
        );
        let row: Option<KnownCommuneRow> = on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(insee)
            .fetch_optional(pool)
            .await)?;
        Ok(row.map(|row| {
            let parquet = row.parquet.into_parquet();
            KnownCommune {
                name: row.commune_name,
                competent: match (&parquet, row.source) {
                    (Some(parquet), Some(competence)) => Some(ParquetRef {
                        id: parquet.organisation.id,
                        name: parquet.organisation.name.clone(),
                        competence,
                    }),
                    _ => None,
                },
                parquet,
            }
        }))
    }

    /// A parquet as a referral shows it; `None` when `id` is no parquet.
    pub async fn referral_parquet(&self, id: Uuid) -> StoreResult<Option<ReferralParquet>> {
        let sql = format!(
            "SELECT {PARQUET_OF_REFERRAL} FROM organisations o \
             LEFT JOIN parquet_settings s ON s.parquet_id = o.id WHERE o.id = $1 AND o.kind = 'parquet'"
        );
        let row: Option<ParquetRow> = on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        Ok(row.and_then(ParquetRow::into_parquet))
    }

    pub async fn commune_name(&self, insee: &str) -> StoreResult<Option<String>> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT name FROM communes WHERE insee = $1"
        )
        .bind(insee)
        .fetch_optional(pool)
        .await)?)
    }

    /// Offences whose number is `query`, or whose label holds every word of it.
    pub async fn search_offences(&self, query: &str, limit: i64) -> StoreResult<Vec<Offence>> {
        let query = query.trim();
        if query.is_empty() {
            return Ok(Vec::new());
        }
        let columns = "SELECT code, nature, label, defined_by, punished_by FROM offences";
        if let Ok(code) = query.parse::<i64>() {
            let sql = format!("{columns} WHERE code = $1");
            return Ok(on_pool!(self, |pool| sqlx::query_as(&sql)
                .bind(code)
                .fetch_all(pool)
                .await)?);
        }
        let words: Vec<String> = search_key(query)
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .take(8)
            .collect();
        on_pool!(self, |pool, Db| {
            let mut builder = sqlx::QueryBuilder::<Db>::new(columns);
            builder.push(" WHERE 1 = 1");
            for word in &words {
                builder
                    .push(" AND (' ' || search_label) LIKE ")
                    .push_bind(format!("% {word}%"));
            }
            builder.push(" ORDER BY code LIMIT ").push_bind(limit);
            Ok(builder.build_query_as().fetch_all(pool).await?)
        })
    }

    pub async fn offences_by_codes(&self, codes: &[i64]) -> StoreResult<Vec<Offence>> {
        if codes.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(self, |pool, Db| {
            let mut builder = sqlx::QueryBuilder::<Db>::new(
                "SELECT code, nature, label, defined_by, punished_by FROM offences WHERE code IN (",
            );
            let mut separated = builder.separated(", ");
            for code in codes {
                separated.push_bind(*code);
            }
            builder.push(") ORDER BY code");
            Ok(builder.build_query_as().fetch_all(pool).await?)
        })
    }

    pub async fn dismissal_reasons(&self) -> StoreResult<Vec<DismissalReason>> {
        Ok(on_pool!(self, |pool| sqlx::query_as(
            "SELECT code, label FROM dismissal_reasons ORDER BY code"
        )
        .fetch_all(pool)
        .await)?)
    }
}

/// A parquet's organisation (`o`) and its settings' deadlines (`s`, outer-joined), as
/// `ParquetRow` reads them.
const PARQUET_OF_REFERRAL: &str = "o.id, o.kind, o.name, o.siret, o.court_code, o.departement, \
     o.requires_validation, o.created_at, s.immediate_acknowledge_minutes, s.urgent_acknowledge_hours, \
     s.normal_register_working_days";

/// `PARQUET_OF_REFERRAL`, every column nullable (an outer join may find no parquet).
#[derive(sqlx::FromRow)]
struct ParquetRow {
    id: Option<Uuid>,
    kind: Option<String>,
    name: Option<String>,
    siret: Option<String>,
    court_code: Option<String>,
    departement: Option<String>,
    requires_validation: Option<bool>,
    created_at: Option<DateTime<Utc>>,
    immediate_acknowledge_minutes: Option<i64>,
    urgent_acknowledge_hours: Option<i64>,
    normal_register_working_days: Option<i64>,
}

impl ParquetRow {
    /// The parquet with its deadlines as `Store::referral` gives them.
    fn into_parquet(self) -> Option<ReferralParquet> {
        let (Some(id), Some(kind), Some(name), Some(created_at)) =
            (self.id, self.kind, self.name, self.created_at)
        else {
            return None;
        };
        Some(ReferralParquet {
            organisation: Organisation {
                id,
                kind,
                name,
                siret: self.siret,
                court_code: self.court_code,
                departement: self.departement,
                requires_validation: self.requires_validation.unwrap_or(false),
                created_at,
            },
            deadline_policy: crate::ParquetSettings::joined(
                self.immediate_acknowledge_minutes,
                self.urgent_acknowledge_hours,
                self.normal_register_working_days,
            )
            .deadline_policy(),
        })
    }
}

/// A row of `Store::known_commune`.
#[derive(sqlx::FromRow)]
struct KnownCommuneRow {
    commune_name: String,
    source: Option<String>,
    #[sqlx(flatten)]
    parquet: ParquetRow,
}

/// Why an import failed: the file (the operator must fix it) or the database.
#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    #[error(transparent)]
    File(#[from] CompetenceImportError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_encoding_of_the_official_files() {
        let utf8 = "Numéro NATINF;Réprimée par".as_bytes();
        assert_eq!(decode_legacy_text(utf8), "Numéro NATINF;Réprimée par");
        let latin1 = encoding_rs::WINDOWS_1252
            .encode("Numéro;Réprimée;Définie;Délit")
            .0
            .into_owned();
        assert_eq!(decode_legacy_text(&latin1), "Numéro;Réprimée;Définie;Délit");
        // cp850: é = 0x82.
        let cp850 = b"Num\x82ro;R\x82prim\x82e;D\x82lit";
        assert_eq!(decode_legacy_text(cp850), "Numéro;Réprimée;Délit");
    }

    #[test]
    fn parses_natinf_rows_and_rejects_bad_numbers() {
        let text = "Numéro NATINF;Nature de l'infraction;Qualification de l'infraction;Définie par;Réprimée par\n7151;Délit;VOL;ART.311-1 C.PENAL.;ART.311-3 C.PENAL.\n";
        let rows = parse_offences(text).expect("parses");
        assert_eq!(rows[0].code, 7151);
        assert_eq!(rows[0].nature, "Délit");
        assert!(parse_offences("a;b;c;d;e\nX12;Délit;VOL;;\n").is_err());
        assert!(parse_offences("a;b;c;d;e\n").is_err());
    }

    #[test]
    fn parquet_names() {
        assert_eq!(
            parquet_name("Tribunal judiciaire de Blois"),
            "Parquet du tribunal judiciaire de Blois"
        );
        assert_eq!(parquet_id_for_court("109"), parquet_id_for_court("109"));
        assert_ne!(parquet_id_for_court("109"), parquet_id_for_court("146"));
    }
}
