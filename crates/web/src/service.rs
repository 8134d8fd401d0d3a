//! The application's operations on referrals, shared by the API and the pages: each checks
//! visibility (404 across tenants), asks the domain's transition table (403/409), validates the
//! input (422), then writes the change and its timeline entry in one transaction.

use crate::auth::CurrentUser;
use crate::error::{AppError, FieldError};
use crate::AppState;
use chrono::{Datelike, NaiveDate};
use domain::limitation::limitation_date;
use domain::permissions::{can_see_referral, Audience, ReferralScope};
use domain::referral::{
    transition, AlternativeMeasureKind, JudgementOutcome, ProsecutionMode, TransitionContext,
};
use domain::{
    Action, DecisionKind, InseeCode, Kind, ParquetNumber, Role, Siren, Siret, Status, Urgency,
};
use rand::Rng;
use serde::{Deserialize, Deserializer};
use store::{
    Decision, Judgement, KnownCommune, Message, NewEvent, Party, Referral, ReferralAccess,
    ReferralContent, ReferralParquet, ReferralUpdate,
};
use uuid::Uuid;

/// Distinguishes a field sent as `null` (clear it) from a field left out (keep it).
fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Clone, Deserialize)]
pub struct PlaceInput {
    pub commune_insee: Option<String>,
    pub address: Option<String>,
}

/// The sender's fields, for creation (absent = default) and PATCH (absent = unchanged).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferralInput {
    pub kind: Option<String>,
    pub urgency: Option<String>,
    pub title: Option<String>,
    pub facts: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub administration_reference: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub facts_started_on: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "double_option")]
    pub facts_ended_on: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "double_option")]
    pub place: Option<Option<PlaceInput>>,
    pub offence_codes: Option<Vec<i64>>,
    pub parties: Option<Vec<Party>>,
    /// A parquet other than the proposed one; requires `competence_reason`.
    #[serde(default, deserialize_with = "double_option")]
    pub parquet_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "double_option")]
    pub competence_reason: Option<Option<String>>,
}

const MAX_TITLE: usize = 200;
const MAX_FACTS: usize = 100_000;
const MAX_SHORT: usize = 500;

fn non_empty(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// What `merge` gives: the content, and its parquet as a referral shows it when it was read
/// along the way.
struct Merged {
    content: ReferralContent,
    parquet: Option<ReferralParquet>,
}

pub struct ReferralService<'a> {
    pub state: &'a AppState,
    pub user: &'a CurrentUser,
}

/// Decision input, as in `POST /referrals/{id}/decision`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DecisionInput {
    pub kind: String,
    pub reason_code: Option<String>,
    pub measure: Option<String>,
    pub mode: Option<String>,
    pub comment: Option<String>,
    pub hearing_date: Option<NaiveDate>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JudgementInput {
    pub date: NaiveDate,
    pub outcome: String,
    pub summary: Option<String>,
    pub appeal: Option<bool>,
}

fn random_code() -> String {
    // Crockford base32 without look-alikes; 60 bits of entropy.
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut rng = rand::thread_rng();
    let chars: Vec<char> = (0..12)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!(
        "{}-{}-{}",
        chars[..4].iter().collect::<String>(),
        chars[4..8].iter().collect::<String>(),
        chars[8..].iter().collect::<String>()
    )
}

fn event(event_type: &str, audience: Audience, summary: impl Into<String>) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        audience: audience.as_str().into(),
        summary: summary.into(),
    }
}

impl<'a> ReferralService<'a> {
    pub fn new(state: &'a AppState, user: &'a CurrentUser) -> Self {
        ReferralService { state, user }
    }

    /// The referral if the caller may see it; otherwise 404, whether it exists or not.
    pub async fn load(&self, id: Uuid) -> Result<Referral, AppError> {
        let referral = self
            .state
            .store
            .referral(id)
            .await?
            .ok_or(AppError::NotFound)?;
        self.visible(&ReferralAccess::of(&referral))?;
        Ok(referral)
    }

    /// `load` for a request that only checks an action: the facts access depends on, not the
    /// whole referral. The same 404 when the caller may not see it.
    pub async fn load_access(&self, id: Uuid) -> Result<ReferralAccess, AppError> {
        let access = self
            .state
            .store
            .referral_access(id)
            .await?
            .ok_or(AppError::NotFound)?;
        self.visible(&access)?;
        Ok(access)
    }

    fn visible(&self, access: &ReferralAccess) -> Result<(), AppError> {
        let scope = ReferralScope {
            administration_id: access.administration_id,
            author_id: access.author_id,
            parquet_id: access.parquet_id,
            status: Self::status_of(&access.status)?,
        };
        if !can_see_referral(&self.user.actor(), &scope) {
            return Err(AppError::NotFound);
        }
        Ok(())
    }

    /// The notifications and e-mails an event causes.
    async fn outbox_for(
        &self,
        referral: &Referral,
        event_type: &str,
    ) -> Result<Vec<store::OutboxMessage>, AppError> {
        Ok(match self.to_tell(referral, event_type).await? {
            Some((users, notice)) => {
                crate::notify::for_users(self.state, &users, referral, notice).await?
            }
            None => Vec::new(),
        })
    }

    /// Who is told of a timeline entry of this type, and how (`None`: nobody).
    async fn to_tell(
        &self,
        referral: &Referral,
        event_type: &str,
    ) -> Result<Option<(Vec<store::User>, crate::notify::Notice)>, AppError> {
        use crate::notify::{self, Notice};
        let now = self.state.now();
        Ok(Some(match event_type {
            "submitted" | "validated" => {
                let urgent = referral.row.urgency != Urgency::Normal.as_str();
                let notice = match Urgency::parse(&referral.row.urgency) {
                    Some(Urgency::Immediate) => Notice::ImmediateReferral,
                    Some(Urgency::Urgent) => Notice::UrgentReferral,
                    _ => Notice::NewReferral,
                };
                (
                    notify::parquet_recipients(self.state, referral, now, urgent).await?,
                    notice,
                )
            }
            "awaiting_validation" => (
                notify::referents(self.state, referral).await?,
                Notice::AwaitingValidation,
            ),
            "acknowledged" => (
                notify::sender_recipients(self.state, referral).await?,
                Notice::Acknowledged,
            ),
            "registered" => (
                notify::sender_recipients(self.state, referral).await?,
                Notice::Registered,
            ),
            "complement_requested" => (
                notify::sender_recipients(self.state, referral).await?,
                Notice::ComplementRequested,
            ),
            "complement_answered" => (
                notify::parquet_recipients(self.state, referral, now, false).await?,
                Notice::ComplementAnswered,
            ),
            "news_requested" => (
                notify::parquet_recipients(self.state, referral, now, false).await?,
                Notice::NewsRequested,
            ),
            "decided" => (
                notify::sender_recipients(self.state, referral).await?,
                Notice::Decision,
            ),
            "judged" | "appealed" => (
                notify::sender_recipients(self.state, referral).await?,
                Notice::Judgement,
            ),
            _ => return Ok(None),
        }))
    }

    /// Loads a referral for reading, and journals the read: every read of a referral by anyone
    /// is in the journal.
    pub async fn read(&self, id: Uuid) -> Result<Referral, AppError> {
        let referral = self.load(id).await?;
        self.journal("referral.read", format!("referral:{id}"), String::new())
            .await?;
        Ok(referral)
    }

    /// Journals an action that changes nothing (a read, a download).
    pub async fn journal(
        &self,
        action: &str,
        target: String,
        detail: String,
    ) -> Result<(), AppError> {
        let input = store::AuditInput {
            at: self.state.now(),
            actor: self.user.actor_info(),
            action: action.into(),
            target,
            detail,
        };
        self.state.store.audit(&input).await?;
        Ok(())
    }

    fn status_of(status: &str) -> Result<Status, AppError> {
        Status::parse(status).ok_or_else(|| AppError::Internal("unknown status".into()))
    }

    /// Asks the transition table; returns the status the action leads to.
    fn check(&self, referral: &Referral, action: Action) -> Result<Status, AppError> {
        self.check_access(&ReferralAccess::of(referral), action)
    }

    fn check_access(&self, access: &ReferralAccess, action: Action) -> Result<Status, AppError> {
        let context = TransitionContext {
            service_requires_validation: access.administration_requires_validation,
            status_before_complement: access
                .status_before_complement
                .as_deref()
                .and_then(Status::parse),
        };
        Ok(transition(
            Self::status_of(&access.status)?,
            action,
            self.user.role,
            context,
        )?)
    }

    async fn apply(
        &self,
        referral: &Referral,
        mut update: ReferralUpdate,
        event: NewEvent,
    ) -> Result<Referral, AppError> {
        // Those concerned are told in the same transaction as the change.
        let mut after = referral.clone();
        if let Some(reference) = &update.reference {
            after.row.reference = Some(reference.clone());
        }
        let outbox = self.outbox_for(&after, &event.event_type).await?;
        update.outbox.extend(outbox);
        if let Some(decision) = &update.decision {
            // Every decision produces its art. 40-2 notice at once, signed.
            let mut decided = referral.clone();
            decided.row.decision = Some(store::Json(decision.clone()));
            if let Some(content) = crate::views::notice_content(&decided) {
                update.notice_signature = Some(
                    self.state
                        .signer
                        .sign(&domain::integrity::canonical_bytes(&content)),
                );
            }
        }
        let applied = self
            .state
            .store
            .apply_update(
                referral.row.id,
                &referral.row.status,
                &update,
                self.state.now(),
                &self.user.actor_info(),
                &event,
            )
            .await?;
        if !applied {
            return Err(changed_meanwhile());
        }
        self.load(referral.row.id).await
    }

    /// Validates the input against the current content and computes the derived fields
    /// (competent parquet, limitation date).
    async fn merge(
        &self,
        mut content: ReferralContent,
        input: ReferralInput,
    ) -> Result<Merged, AppError> {
        let mut errors: Vec<FieldError> = Vec::new();
        if let Some(kind) = input.kind {
            match Kind::parse(&kind) {
                Some(_) => content.kind = kind,
                None => errors.push(FieldError::new("kind", "Type de saisine inconnu.")),
            }
        }
        if let Some(urgency) = input.urgency {
            match Urgency::parse(&urgency) {
                Some(_) => content.urgency = urgency,
                None => errors.push(FieldError::new(
                    "urgency",
                    "Niveau d'urgence inconnu (normal, urgent ou immediate).",
                )),
            }
        }
        if let Some(title) = input.title {
            if title.chars().count() > MAX_TITLE {
                errors.push(FieldError::new(
                    "title",
                    format!("L'intitulé ne doit pas dépasser {MAX_TITLE} caractères."),
                ));
            }
            content.title = title.trim().to_string();
        }
        if let Some(facts) = input.facts {
            if facts.chars().count() > MAX_FACTS {
                errors.push(FieldError::new(
                    "facts",
                    format!("L'exposé des faits ne doit pas dépasser {MAX_FACTS} caractères."),
                ));
            }
            content.facts = facts.trim().to_string();
        }
        if let Some(reference) = input.administration_reference {
            let reference = non_empty(reference);
            if reference
                .as_ref()
                .is_some_and(|r| r.chars().count() > MAX_SHORT)
            {
                errors.push(FieldError::new(
                    "administration_reference",
                    "La référence est trop longue.",
                ));
            }
            content.administration_reference = reference;
        }
        if let Some(started) = input.facts_started_on {
            content.facts_started_on = started;
        }
        if let Some(ended) = input.facts_ended_on {
            content.facts_ended_on = ended;
        }
        if let (Some(start), Some(end)) = (content.facts_started_on, content.facts_ended_on) {
            if end < start {
                errors.push(FieldError::new(
                    "facts_ended_on",
                    "La fin des faits ne peut précéder leur début.",
                ));
            }
        }
        let today = self.state.now().date_naive();
        if content.facts_started_on.is_some_and(|d| d > today)
            || content.facts_ended_on.is_some_and(|d| d > today)
        {
            errors.push(FieldError::new(
                "facts_started_on",
                "Les dates des faits ne peuvent être dans le futur.",
            ));
        }
        let mut place_changed = false;
        // The commune checked, with its competent parquet: read together.
        let mut checked: Option<(String, KnownCommune)> = None;
        if let Some(place) = input.place {
            place_changed = true;
            match place {
                None => {
                    content.commune_insee = None;
                    content.address = None;
                }
                Some(place) => {
                    content.address = non_empty(place.address);
                    content.commune_insee = match non_empty(place.commune_insee) {
                        None => None,
                        Some(code) => match code.parse::<InseeCode>() {
                            Ok(code) => {
                                match self.state.store.known_commune(code.as_str()).await? {
                                    Some(commune) => {
                                        checked = Some((code.to_string(), commune));
                                        Some(code.to_string())
                                    }
                                    None => {
                                        errors.push(FieldError::new(
                                            "place.commune_insee",
                                            "Aucune commune ne porte ce code INSEE.",
                                        ));
                                        None
                                    }
                                }
                            }
                            Err(e) => {
                                errors.push(FieldError::new(
                                    "place.commune_insee",
                                    capitalised(&e.to_string()),
                                ));
                                None
                            }
                        },
                    };
                }
            }
        }
        // The offences read to check the codes also give the limitation date, unless the
        // input leaves the codes unchanged.
        let mut offences = None;
        if let Some(codes) = input.offence_codes {
            let known = self.state.store.offences_by_codes(&codes).await?;
            for code in &codes {
                if !known.iter().any(|o| o.code == *code) {
                    errors.push(FieldError::new(
                        "offence_codes",
                        format!("Le code NATINF {code} est inconnu."),
                    ));
                }
            }
            content.offence_codes = codes;
            offences = Some(known);
        }
        if let Some(parties) = input.parties {
            for (index, party) in parties.iter().enumerate() {
                errors.extend(validate_party(index, party, today));
            }
            content.parties = parties.into_iter().map(normalise_party).collect();
        }
        if let Some(reason) = input.competence_reason {
            content.competence_reason = non_empty(reason);
        }

        // The competent parquet: proposed from the commune, or chosen with a reason.
        // The parquets read on the way, as a referral shows them (see `create_draft`).
        let mut parquets_read: Vec<ReferralParquet> = Vec::new();
        let proposed = match (&content.commune_insee, checked) {
            (Some(insee), Some((checked, commune))) if *insee == checked => {
                parquets_read.extend(commune.parquet);
                commune.competent
            }
            (Some(insee), _) => self.state.store.competence_of(insee).await?,
            (None, _) => None,
        };
        match input.parquet_id {
            Some(Some(chosen)) => {
                let parquet = self.state.store.referral_parquet(chosen).await?;
                let unknown = parquet.is_none();
                parquets_read.extend(parquet);
                if unknown {
                    errors.push(FieldError::new("parquet_id", "Parquet inconnu."));
                } else if proposed.as_ref().is_some_and(|p| p.id == chosen) {
                    content.parquet_id = Some(chosen);
                    content.competence = proposed.as_ref().map(|p| p.competence.clone());
                    content.competence_reason = None;
                } else {
                    if content.competence_reason.is_none() {
                        errors.push(FieldError::new(
                            "competence_reason",
                            "Indiquez pourquoi vous choisissez un autre parquet que celui proposé.",
                        ));
                    }
                    content.parquet_id = Some(chosen);
                    content.competence = Some("chosen".into());
                }
            }
            Some(None) => {
                content.parquet_id = proposed.as_ref().map(|p| p.id);
                content.competence = proposed.as_ref().map(|p| p.competence.clone());
                content.competence_reason = None;
            }
            None => {
                if place_changed
                    || content.parquet_id.is_none()
                    || content.competence.as_deref() != Some("chosen")
                {
                    content.parquet_id = proposed.as_ref().map(|p| p.id);
                    content.competence = proposed.as_ref().map(|p| p.competence.clone());
                }
            }
        }

        let offences = match offences {
            Some(known) => known,
            None => {
                self.state
                    .store
                    .offences_by_codes(&content.offence_codes)
                    .await?
            }
        };
        let natures: Vec<&str> = offences.iter().map(|o| o.nature.as_str()).collect();
        content.limitation_date = limitation_date(
            content.facts_ended_on.or(content.facts_started_on),
            &natures,
        );

        if errors.is_empty() {
            let parquet = parquets_read
                .into_iter()
                .find(|p| Some(p.organisation.id) == content.parquet_id);
            Ok(Merged { content, parquet })
        } else {
            Err(AppError::Invalid(errors))
        }
    }

    pub async fn create_draft(&self, input: ReferralInput) -> Result<Referral, AppError> {
        if !self.user.role.is_sender() {
            return Err(AppError::Forbidden(
                "Seuls les agents et référents d'une administration créent des saisines.".into(),
            ));
        }
        let initial = ReferralContent {
            kind: Kind::Article40.as_str().into(),
            urgency: Urgency::Normal.as_str().into(),
            ..Default::default()
        };
        let Merged { content, parquet } = self.merge(initial, input).await?;
        let id = Uuid::now_v7();
        let now = self.state.now();
        self.state
            .store
            .create_referral(
                id,
                self.user.organisation.id,
                self.user.user.id,
                Status::Draft.as_str(),
                &content,
                now,
                &self.user.actor_info(),
                &event("created", Audience::Sender, "Brouillon créé"),
            )
            .await?;
        // Answered as built rather than read back (one statement fewer per creation), when
        // the parquet was read while checking the content; a test compares it with the
        // stored referral.
        match (content.parquet_id, parquet) {
            (Some(_), None) => self.load(id).await,
            (_, parquet) => Ok(self.new_draft(id, content, parquet, now)),
        }
    }

    /// The draft `create_draft` just stored, as `Store::referral` reads it.
    fn new_draft(
        &self,
        id: Uuid,
        content: ReferralContent,
        parquet: Option<ReferralParquet>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Referral {
        let mut offence_codes = content.offence_codes;
        offence_codes.sort_unstable();
        offence_codes.dedup();
        let (parquet, deadline_policy) = match parquet {
            Some(p) => (Some(p.organisation), p.deadline_policy),
            None => (None, domain::calendar::DeadlinePolicy::default()),
        };
        Referral {
            row: store::ReferralRow {
                id,
                reference: None,
                status: Status::Draft.as_str().into(),
                kind: content.kind,
                urgency: content.urgency,
                title: content.title,
                facts: content.facts,
                administration_reference: content.administration_reference,
                facts_started_on: content.facts_started_on,
                facts_ended_on: content.facts_ended_on,
                commune_insee: content.commune_insee,
                address: content.address,
                administration_id: self.user.organisation.id,
                author_id: self.user.user.id,
                parquet_id: content.parquet_id,
                competence: content.competence,
                competence_reason: content.competence_reason,
                assigned_to: None,
                parquet_number: None,
                limitation_date: content.limitation_date,
                decision: None,
                judgement: None,
                status_before_complement: None,
                verification_code: None,
                created_at: now,
                updated_at: now,
                submitted_at: None,
                acknowledged_at: None,
                registered_at: None,
                decided_at: None,
                receipt_signature: None,
                notice_signature: None,
            },
            administration: self.user.organisation.clone(),
            parquet,
            offence_codes,
            parties: content.parties,
            attachments: Vec::new(),
            deadline_policy,
        }
    }

    pub async fn update_draft(&self, id: Uuid, input: ReferralInput) -> Result<Referral, AppError> {
        let referral = self.load(id).await?;
        self.check(&referral, Action::Edit)?;
        let content = self.merge(content_of(&referral), input).await?.content;
        if !self
            .state
            .store
            .update_draft(id, &content, self.state.now())
            .await?
        {
            return Err(AppError::Conflict(
                "La saisine n'est plus un brouillon.".into(),
            ));
        }
        self.load(id).await
    }

    /// The fields still missing before sending.
    pub fn missing_for_submission(referral: &Referral) -> Vec<FieldError> {
        let row = &referral.row;
        let mut missing = Vec::new();
        if row.title.trim().is_empty() {
            missing.push(FieldError::new(
                "title",
                "L'intitulé est obligatoire pour transmettre.",
            ));
        }
        if row.facts.trim().is_empty() {
            missing.push(FieldError::new(
                "facts",
                "L'exposé des faits est obligatoire pour transmettre.",
            ));
        }
        if row.parquet_id.is_none() {
            missing.push(FieldError::new(
                "place.commune_insee",
                "Indiquez le lieu des faits ou choisissez un parquet.",
            ));
        }
        missing
    }

    pub async fn submit(&self, id: Uuid) -> Result<Referral, AppError> {
        let referral = self.load(id).await?;
        let next = self.check(&referral, Action::Submit)?;
        let missing = Self::missing_for_submission(&referral);
        if !missing.is_empty() {
            return Err(AppError::Invalid(missing));
        }
        if next == Status::AwaitingValidation {
            let update = ReferralUpdate {
                status: Some(next.as_str().into()),
                ..Default::default()
            };
            return self
                .apply(
                    &referral,
                    update,
                    event(
                        "awaiting_validation",
                        Audience::Sender,
                        "Soumise au référent pour validation",
                    ),
                )
                .await;
        }
        self.send(&referral, "submitted").await
    }

    /// Sends to the parquet: reference, verification code, instant, signed receipt and messages,
    /// in the transaction that allocates the reference number.
    async fn send(&self, referral: &Referral, event_type: &str) -> Result<Referral, AppError> {
        let now = self.state.now();
        let year = now.year();
        let parquet = referral
            .parquet
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let code = random_code();
        // The receipt is signed over exactly what the database will hold once sent; only the
        // reference is left to fill in once its number is allocated.
        let mut sent = referral.clone();
        sent.row.reference = Some(String::new());
        sent.row.submitted_at = Some(now);
        sent.row.verification_code = Some(code.clone());
        let mut receipt = crate::views::receipt_content(&sent)
            .ok_or_else(|| AppError::Internal("receipt without parquet".into()))?;
        let to_tell = match self.to_tell(&sent, event_type).await? {
            Some((users, notice)) => {
                Some((crate::notify::recipients(self.state, &users).await?, notice))
            }
            None => None,
        };
        let applied = self
            .state
            .store
            .apply_numbered_update(
                referral.row.id,
                &referral.row.status,
                year,
                now,
                &self.user.actor_info(),
                |number| {
                    let reference = format!("IP-{year}-{number:06}");
                    receipt.reference = reference.clone();
                    sent.row.reference = Some(reference.clone());
                    let outbox = to_tell
                        .map(|(recipients, notice)| {
                            crate::notify::messages(self.state, &recipients, &sent, notice)
                        })
                        .unwrap_or_default();
                    let signature = self
                        .state
                        .signer
                        .sign(&domain::integrity::canonical_bytes(&receipt));
                    // What the update writes, so that the sent referral is answered without
                    // reading it back.
                    sent.row.status = Status::Submitted.as_str().into();
                    sent.row.updated_at = now;
                    sent.row.receipt_signature = Some(signature.clone());
                    let update = ReferralUpdate {
                        status: Some(Status::Submitted.as_str().into()),
                        reference: Some(reference.clone()),
                        verification_code: Some(code),
                        submitted_at: Some(now),
                        receipt_signature: Some(signature),
                        outbox,
                        ..Default::default()
                    };
                    let summary = format!("Saisine {reference} transmise au {parquet}");
                    (update, event(event_type, Audience::Everyone, summary))
                },
            )
            .await?;
        if !applied {
            return Err(changed_meanwhile());
        }
        Ok(sent)
    }

    pub async fn validate(&self, id: Uuid) -> Result<Referral, AppError> {
        let referral = self.load(id).await?;
        self.check(&referral, Action::Validate)?;
        let missing = Self::missing_for_submission(&referral);
        if !missing.is_empty() {
            return Err(AppError::Invalid(missing));
        }
        self.send(&referral, "validated").await
    }

    pub async fn return_to_draft(&self, id: Uuid, comment: &str) -> Result<Referral, AppError> {
        let referral = self.load(id).await?;
        let next = self.check(&referral, Action::ReturnToDraft)?;
        let comment = required_text(
            "comment",
            comment,
            "Expliquez au rédacteur ce qu'il doit reprendre.",
        )?;
        let update = ReferralUpdate {
            status: Some(next.as_str().into()),
            ..Default::default()
        };
        self.apply(
            &referral,
            update,
            event(
                "returned",
                Audience::Sender,
                format!("Renvoyée au rédacteur : {comment}"),
            ),
        )
        .await
    }

    pub async fn withdraw(&self, id: Uuid) -> Result<Referral, AppError> {
        let referral = self.load(id).await?;
        let next = self.check(&referral, Action::Withdraw)?;
        let update = ReferralUpdate {
            status: Some(next.as_str().into()),
            ..Default::default()
        };
        self.apply(
            &referral,
            update,
            event(
                "withdrawn",
                Audience::Everyone,
                "Saisine retirée par l'expéditeur",
            ),
        )
        .await
    }

    pub async fn acknowledge(&self, id: Uuid) -> Result<Referral, AppError> {
        let referral = self.load(id).await?;
        self.check(&referral, Action::Acknowledge)?;
        if referral.row.acknowledged_at.is_some() {
            return Err(AppError::Conflict(
                "La réception de cette saisine a déjà été accusée.".into(),
            ));
        }
        let update = ReferralUpdate {
            acknowledged_at: Some(self.state.now()),
            ..Default::default()
        };
        let summary = format!("Réception accusée ({})", self.user.role.label_fr());
        self.apply(
            &referral,
            update,
            event("acknowledged", Audience::Everyone, summary),
        )
        .await
    }

    pub async fn register(&self, id: Uuid, parquet_number: &str) -> Result<Referral, AppError> {
        let referral = self.load(id).await?;
        let next = self.check(&referral, Action::Register)?;
        let number: ParquetNumber =
            parquet_number
                .parse()
                .map_err(|e: domain::identifiers::IdentifierError| {
                    AppError::invalid("parquet_number", capitalised(&e.to_string()))
                })?;
        let now = self.state.now();
        let update = ReferralUpdate {
            status: Some(next.as_str().into()),
            parquet_number: Some(number.to_string()),
            registered_at: Some(now),
            // Registering implies the referral was received.
            acknowledged_at: referral.row.acknowledged_at.is_none().then_some(now),
            ..Default::default()
        };
        self.apply(
            &referral,
            update,
            event(
                "registered",
                Audience::Everyone,
                format!("Enregistrée sous le numéro parquet {number}"),
            ),
        )
        .await
        .map_err(|e| match e {
            AppError::Conflict(_) => AppError::invalid(
                "parquet_number",
                "Ce numéro parquet est déjà attribué à une autre saisine de ce parquet.",
            ),
            other => other,
        })
    }

    pub async fn assign(&self, id: Uuid, user_id: Uuid) -> Result<Referral, AppError> {
        let referral = self.load(id).await?;
        self.check(&referral, Action::Assign)?;
        let prosecutor = self
            .state
            .store
            .user(user_id)
            .await?
            .filter(|u| {
                u.organisation_id == self.user.organisation.id
                    && u.role == Role::Prosecutor.as_str()
                    && u.active
            })
            .ok_or_else(|| {
                AppError::invalid("user_id", "Choisissez un magistrat de ce parquet.")
            })?;
        let update = ReferralUpdate {
            assigned_to: Some(prosecutor.id),
            ..Default::default()
        };
        self.apply(
            &referral,
            update,
            event(
                "assigned",
                Audience::Parquet,
                format!("Attribuée à {}", prosecutor.display_name),
            ),
        )
        .await
    }

    pub async fn request_complement(&self, id: Uuid, message: &str) -> Result<Referral, AppError> {
        let referral = self.load(id).await?;
        let next = self.check(&referral, Action::RequestComplement)?;
        let message = required_text("message", message, "Précisez le complément attendu.")?;
        let update = ReferralUpdate {
            status: Some(next.as_str().into()),
            status_before_complement: Some(Some(referral.row.status.clone())),
            ..Default::default()
        };
        let updated = self
            .apply(
                &referral,
                update,
                event(
                    "complement_requested",
                    Audience::Everyone,
                    "Complément demandé à l'expéditeur",
                ),
            )
            .await?;
        self.write_message(&updated, &message, false, false).await?;
        Ok(updated)
    }

    pub async fn answer_complement(&self, id: Uuid, message: &str) -> Result<Referral, AppError> {
        let referral = self.load(id).await?;
        let next = self.check(&referral, Action::AnswerComplement)?;
        let message = required_text("message", message, "Rédigez votre réponse.")?;
        let update = ReferralUpdate {
            status: Some(next.as_str().into()),
            status_before_complement: Some(None),
            ..Default::default()
        };
        let updated = self
            .apply(
                &referral,
                update,
                event(
                    "complement_answered",
                    Audience::Everyone,
                    "Complément transmis par l'expéditeur",
                ),
            )
            .await?;
        self.write_message(&updated, &message, false, false).await?;
        Ok(updated)
    }

    pub async fn open_investigation(&self, id: Uuid) -> Result<Referral, AppError> {
        let referral = self.load(id).await?;
        let next = self.check(&referral, Action::OpenInvestigation)?;
        let update = ReferralUpdate {
            status: Some(next.as_str().into()),
            ..Default::default()
        };
        self.apply(
            &referral,
            update,
            event(
                "investigation_opened",
                Audience::Everyone,
                "Enquête ouverte",
            ),
        )
        .await
    }

    pub async fn transfer(
        &self,
        id: Uuid,
        parquet_id: Uuid,
        reason: &str,
    ) -> Result<Referral, AppError> {
        let referral = self.load(id).await?;
        let next = self.check(&referral, Action::Transfer)?;
        let reason = required_text(
            "reason",
            reason,
            "Indiquez le motif du transfert (incompétence…).",
        )?;
        let target = self
            .state
            .store
            .organisation(parquet_id)
            .await?
            .filter(|o| o.kind == "parquet" && Some(o.id) != referral.row.parquet_id)
            .ok_or_else(|| AppError::invalid("parquet_id", "Choisissez un autre parquet."))?;
        // The receiving parquet is told as for a new referral; the sender sees the transfer.
        let mut moved = referral.clone();
        moved.row.parquet_id = Some(target.id);
        moved.row.assigned_to = None;
        let urgent = referral.row.urgency != Urgency::Normal.as_str();
        let receivers =
            crate::notify::parquet_recipients(self.state, &moved, self.state.now(), urgent).await?;
        let notice = match Urgency::parse(&referral.row.urgency) {
            Some(Urgency::Immediate) => crate::notify::Notice::ImmediateReferral,
            Some(Urgency::Urgent) => crate::notify::Notice::UrgentReferral,
            _ => crate::notify::Notice::NewReferral,
        };
        let outbox = crate::notify::for_users(self.state, &receivers, &moved, notice).await?;
        let update = ReferralUpdate {
            status: Some(next.as_str().into()),
            parquet_id: Some(target.id),
            competence: Some("chosen".into()),
            clear_parquet_progress: true,
            outbox,
            ..Default::default()
        };
        let from = referral
            .parquet
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let summary = format!("Transférée du {from} au {} : {reason}", target.name);
        let applied = self
            .state
            .store
            .apply_update(
                id,
                &referral.row.status,
                &update,
                self.state.now(),
                &self.user.actor_info(),
                &event("transferred", Audience::Everyone, summary),
            )
            .await?;
        if !applied {
            return Err(AppError::Conflict(
                "La saisine a été modifiée entre-temps ; rechargez-la.".into(),
            ));
        }
        // The caller's parquet no longer sees it: return what it was, with its new destination.
        self.state
            .store
            .referral(id)
            .await?
            .ok_or(AppError::NotFound)
    }

    pub async fn decide(&self, id: Uuid, input: DecisionInput) -> Result<Referral, AppError> {
        let referral = self.load(id).await?;
        let kind = DecisionKind::parse(&input.kind)
            .ok_or_else(|| AppError::invalid("kind", "Type de décision inconnu (dismissal, alternative_measure, prosecution, judicial_investigation, joined)."))?;
        let next = self.check(&referral, kind.action())?;
        let comment = non_empty(input.comment.clone());
        let mut decision = Decision {
            kind: kind.as_str().into(),
            reason_code: None,
            measure: None,
            mode: None,
            comment: comment.clone(),
            hearing_date: None,
            decided_at: self.state.now(),
        };
        let summary = match kind {
            DecisionKind::Dismissal => {
                let code = non_empty(input.reason_code).ok_or_else(|| {
                    AppError::invalid("reason_code", "Choisissez le motif du classement.")
                })?;
                let reasons = self.state.store.dismissal_reasons().await?;
                let reason = reasons.iter().find(|r| r.code == code).ok_or_else(|| {
                    AppError::invalid("reason_code", "Motif de classement inconnu.")
                })?;
                decision.reason_code = Some(code.clone());
                format!(
                    "Classement sans suite — motif {} : {}",
                    reason.code, reason.label
                )
            }
            DecisionKind::AlternativeMeasure => {
                let measure = non_empty(input.measure)
                    .and_then(|m| AlternativeMeasureKind::parse(&m))
                    .ok_or_else(|| {
                        AppError::invalid("measure", "Choisissez la mesure alternative.")
                    })?;
                decision.measure = Some(measure.as_str().into());
                format!("Mesure alternative aux poursuites : {}", measure.label_fr())
            }
            DecisionKind::Prosecution => {
                let mode = non_empty(input.mode)
                    .and_then(|m| ProsecutionMode::parse(&m))
                    .ok_or_else(|| AppError::invalid("mode", "Choisissez le mode de poursuite."))?;
                decision.mode = Some(mode.as_str().into());
                decision.hearing_date = input.hearing_date;
                match input.hearing_date {
                    Some(date) => format!(
                        "Poursuites : {} — audience le {}",
                        mode.label_fr(),
                        date.format("%d/%m/%Y")
                    ),
                    None => format!("Poursuites : {}", mode.label_fr()),
                }
            }
            DecisionKind::JudicialInvestigation => {
                "Ouverture d'une information judiciaire".to_string()
            }
            DecisionKind::Joined => {
                let procedure = comment.clone().ok_or_else(|| {
                    AppError::invalid(
                        "comment",
                        "Indiquez la procédure à laquelle la saisine est jointe.",
                    )
                })?;
                format!("Jointe à la procédure {procedure}")
            }
        };
        let update = ReferralUpdate {
            status: Some(next.as_str().into()),
            decision: Some(decision.clone()),
            decided_at: Some(decision.decided_at),
            ..Default::default()
        };
        self.apply(
            &referral,
            update,
            event("decided", Audience::Everyone, summary),
        )
        .await
    }

    /// The outcome of an alternative measure: success → dismissal with the matching reason,
    /// failure → prosecution.
    pub async fn measure_outcome(
        &self,
        id: Uuid,
        success: bool,
        mode: Option<String>,
    ) -> Result<Referral, AppError> {
        let referral = self.load(id).await?;
        let action = if success {
            Action::RecordMeasureSuccess
        } else {
            Action::RecordMeasureFailure
        };
        let next = self.check(&referral, action)?;
        let measure = referral
            .row
            .decision
            .as_ref()
            .and_then(|d| d.0.measure.clone())
            .unwrap_or_default();
        let now = self.state.now();
        let (decision, summary) = if success {
            let code = dismissal_reason_after_measure(&measure);
            (
                Decision {
                    kind: "dismissal".into(),
                    reason_code: Some(code.into()),
                    measure: Some(measure),
                    mode: None,
                    comment: None,
                    hearing_date: None,
                    decided_at: now,
                },
                format!("Mesure alternative réussie — classement sans suite, motif {code}"),
            )
        } else {
            let mode = mode
                .and_then(|m| ProsecutionMode::parse(&m))
                .ok_or_else(|| {
                    AppError::invalid(
                        "mode",
                        "Choisissez le mode de poursuite après l'échec de la mesure.",
                    )
                })?;
            (
                Decision {
                    kind: "prosecution".into(),
                    reason_code: None,
                    measure: Some(measure),
                    mode: Some(mode.as_str().into()),
                    comment: None,
                    hearing_date: None,
                    decided_at: now,
                },
                format!(
                    "Échec de la mesure alternative — poursuites : {}",
                    mode.label_fr()
                ),
            )
        };
        let update = ReferralUpdate {
            status: Some(next.as_str().into()),
            decision: Some(decision),
            decided_at: Some(now),
            ..Default::default()
        };
        self.apply(
            &referral,
            update,
            event("decided", Audience::Everyone, summary),
        )
        .await
    }

    pub async fn judgement(&self, id: Uuid, input: JudgementInput) -> Result<Referral, AppError> {
        let referral = self.load(id).await?;
        let status = Self::status_of(&referral.row.status)?;
        let appeal = input.appeal.unwrap_or(false);
        let outcome = JudgementOutcome::parse(&input.outcome).ok_or_else(|| {
            AppError::invalid(
                "outcome",
                "Issue inconnue (conviction, acquittal ou other).",
            )
        })?;
        // A judgement already recorded may only be completed by an appeal.
        let action = if status == Status::Judged {
            Action::RecordAppeal
        } else {
            Action::RecordJudgement
        };
        let next = self.check(&referral, action)?;
        let judgement = Judgement {
            date: input.date,
            outcome: outcome.as_str().into(),
            summary: non_empty(input.summary),
            appeal,
        };
        let summary = if action == Action::RecordAppeal {
            "Appel interjeté contre le jugement".to_string()
        } else {
            format!(
                "Jugement du {} : {}{}",
                input.date.format("%d/%m/%Y"),
                outcome.label_fr(),
                if appeal { " (appel interjeté)" } else { "" }
            )
        };
        let update = ReferralUpdate {
            status: Some(next.as_str().into()),
            judgement: Some(judgement),
            ..Default::default()
        };
        self.apply(
            &referral,
            update,
            event(
                if action == Action::RecordAppeal {
                    "appealed"
                } else {
                    "judged"
                },
                Audience::Everyone,
                summary,
            ),
        )
        .await
    }

    pub async fn close(&self, id: Uuid) -> Result<Referral, AppError> {
        let referral = self.load(id).await?;
        let next = self.check(&referral, Action::Close)?;
        let update = ReferralUpdate {
            status: Some(next.as_str().into()),
            ..Default::default()
        };
        self.apply(
            &referral,
            update,
            event("closed", Audience::Everyone, "Dossier clôturé"),
        )
        .await
    }

    async fn write_message(
        &self,
        referral: &Referral,
        body: &str,
        internal: bool,
        notify_other_side: bool,
    ) -> Result<Message, AppError> {
        let message = Message {
            id: Uuid::now_v7(),
            referral_id: referral.row.id,
            internal,
            author_id: self.user.user.id,
            author_name: self.user.user.display_name.clone(),
            author_role: self.user.role.as_str().into(),
            author_organisation: self.user.organisation.name.clone(),
            body: body.to_string(),
            at: self.state.now(),
        };
        let entry = if internal {
            event("note", Audience::Parquet, "Note interne ajoutée")
        } else {
            event(
                "message",
                Audience::Everyone,
                format!("Message de {}", self.user.organisation.name),
            )
        };
        // Plain messages tell the other side; complement requests and answers already did.
        let outbox = if internal || !notify_other_side {
            Vec::new()
        } else if self.user.role.is_sender() {
            let users =
                crate::notify::parquet_recipients(self.state, referral, self.state.now(), false)
                    .await?;
            crate::notify::for_users(
                self.state,
                &users,
                referral,
                crate::notify::Notice::MessageFromSender,
            )
            .await?
        } else {
            let users = crate::notify::sender_recipients(self.state, referral).await?;
            crate::notify::for_users(
                self.state,
                &users,
                referral,
                crate::notify::Notice::MessageFromParquet,
            )
            .await?
        };
        self.state
            .store
            .add_message(&message, &entry, &outbox)
            .await?;
        Ok(message)
    }

    /// "Demande de nouvelles": the sender asks the parquet where the matter stands, at most once
    /// a month per referral.
    pub async fn request_news(&self, id: Uuid) -> Result<Referral, AppError> {
        let referral = self.load(id).await?;
        self.check(&referral, Action::RequestNews)?;
        let now = self.state.now();
        let month_ago = now
            .checked_sub_months(chrono::Months::new(1))
            .unwrap_or(now);
        let events = self.state.store.events(id).await?;
        if let Some(last) = events
            .iter()
            .rev()
            .find(|e| e.event_type == "news_requested" && e.at > month_ago)
        {
            let next = last
                .at
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(last.at);
            return Err(AppError::Conflict(format!(
                "Des nouvelles ont déjà été demandées le {} : une demande par mois au plus ; prochaine possible le {}.",
                crate::pages::paris_date(last.at),
                crate::pages::paris_date(next)
            )));
        }
        self.apply(
            &referral,
            ReferralUpdate::default(),
            event(
                "news_requested",
                Audience::Everyone,
                "L'expéditeur demande des nouvelles",
            ),
        )
        .await
    }

    pub async fn post_message(&self, id: Uuid, body: &str) -> Result<Message, AppError> {
        let referral = self.load(id).await?;
        self.check(&referral, Action::PostMessage)?;
        let body = required_text("body", body, "Le message est vide.")?;
        self.write_message(&referral, &body, false, true).await
    }

    pub async fn add_note(&self, id: Uuid, body: &str) -> Result<Message, AppError> {
        let referral = self.load(id).await?;
        self.check(&referral, Action::AddNote)?;
        let body = required_text("body", body, "La note est vide.")?;
        self.write_message(&referral, &body, true, false).await
    }

    pub async fn messages(&self, id: Uuid) -> Result<Vec<Message>, AppError> {
        let referral = self.load(id).await?;
        Ok(self
            .state
            .store
            .messages(referral.row.id, self.user.role.is_parquet())
            .await?)
    }

    /// The timeline as the caller may see it.
    pub async fn events(&self, id: Uuid) -> Result<Vec<store::Event>, AppError> {
        let referral = self.load(id).await?;
        let role = self.user.role;
        Ok(self
            .state
            .store
            .events(referral.row.id)
            .await?
            .into_iter()
            .filter(|e| Audience::parse(&e.audience).is_some_and(|a| a.visible_to(role)))
            .collect())
    }

    /// Checks that the caller may add a document now (before streaming it).
    pub async fn can_add_attachment(&self, id: Uuid) -> Result<ReferralAccess, AppError> {
        let access = self.load_access(id).await?;
        self.check_access(&access, Action::AddAttachment)?;
        Ok(access)
    }

    pub async fn record_attachment(
        &self,
        referral: &ReferralAccess,
        stored: files::StoredFile,
        filename: &str,
        declared_type: Option<&str>,
        kind: &str,
    ) -> Result<store::Attachment, AppError> {
        let now = self.state.now();
        let filename = files::sanitize_filename(filename);
        let is_draft = referral.status == Status::Draft.as_str();
        let attachment = store::Attachment {
            id: Uuid::now_v7(),
            referral_id: referral.id,
            filename: filename.clone(),
            media_type: files::sniff_media_type(&stored.head, declared_type),
            size: stored.size as i64,
            sha256: stored.sha256,
            kind: if is_draft {
                kind.to_string()
            } else {
                format!("additional:{kind}")
            },
            storage_key: stored.storage_key,
            uploaded_by: self.user.user.id,
            uploaded_at: now,
            wrapped_key: stored.wrapped_key,
        };
        let summary = format!(
            "Pièce ajoutée : {filename} (SHA-256 {}…)",
            &attachment.sha256[..16]
        );
        let audience = if is_draft {
            Audience::Sender
        } else {
            Audience::Everyone
        };
        self.state
            .store
            .add_attachment(
                &attachment,
                &self.user.actor_info(),
                &event("attachment_added", audience, summary),
            )
            .await?;
        Ok(attachment)
    }
}

/// The dismissal reason that records a successful alternative measure.
fn dismissal_reason_after_measure(measure: &str) -> &'static str {
    match measure {
        "mediation" => "52",
        "reparation" => "51",
        "regularisation" => "55",
        "penal_composition" => "58",
        "orientation" => "57",
        _ => "56",
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

fn required_text(field: &str, value: &str, message: &str) -> Result<String, AppError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(AppError::invalid(field, message));
    }
    if value.chars().count() > MAX_FACTS {
        return Err(AppError::invalid(field, "Le texte est trop long."));
    }
    Ok(value.to_string())
}

fn validate_party(index: usize, party: &Party, today: NaiveDate) -> Vec<FieldError> {
    let field = |name: &str| format!("parties[{index}].{name}");
    let mut errors = Vec::new();
    if !matches!(party.role.as_str(), "suspect" | "victim" | "witness") {
        errors.push(FieldError::new(
            field("role"),
            "Rôle inconnu (suspect, victim ou witness).",
        ));
    }
    match party.kind.as_str() {
        "person" => {
            if non_empty(party.last_name.clone()).is_none() {
                errors.push(FieldError::new(
                    field("last_name"),
                    "Le nom de la personne est obligatoire.",
                ));
            }
        }
        "organisation" => {
            if non_empty(party.name.clone()).is_none() {
                errors.push(FieldError::new(
                    field("name"),
                    "La raison sociale est obligatoire.",
                ));
            }
        }
        _ => errors.push(FieldError::new(
            field("kind"),
            "Nature inconnue (person ou organisation).",
        )),
    }
    if let Some(siren) = non_empty(party.siren.clone()) {
        if let Err(e) = siren.parse::<Siren>() {
            errors.push(FieldError::new(
                field("siren"),
                capitalised(&format!("SIREN invalide : {e}")),
            ));
        }
    }
    if let Some(siret) = non_empty(party.siret.clone()) {
        if let Err(e) = siret.parse::<Siret>() {
            errors.push(FieldError::new(
                field("siret"),
                capitalised(&format!("SIRET invalide : {e}")),
            ));
        }
    }
    if party.birth_date.is_some_and(|d| d > today) {
        errors.push(FieldError::new(
            field("birth_date"),
            "La date de naissance est dans le futur.",
        ));
    }
    errors
}

fn normalise_party(party: Party) -> Party {
    Party {
        siren: non_empty(party.siren)
            .and_then(|s| s.parse::<Siren>().ok())
            .map(String::from),
        siret: non_empty(party.siret)
            .and_then(|s| s.parse::<Siret>().ok())
            .map(String::from),
        last_name: non_empty(party.last_name),
        first_names: non_empty(party.first_names),
        name: non_empty(party.name),
        address: non_empty(party.address),
        ..party
    }
}

pub fn content_of(referral: &Referral) -> ReferralContent {
    let row = &referral.row;
    ReferralContent {
        kind: row.kind.clone(),
        urgency: row.urgency.clone(),
        title: row.title.clone(),
        facts: row.facts.clone(),
        administration_reference: row.administration_reference.clone(),
        facts_started_on: row.facts_started_on,
        facts_ended_on: row.facts_ended_on,
        commune_insee: row.commune_insee.clone(),
        address: row.address.clone(),
        parquet_id: row.parquet_id,
        competence: row.competence.clone(),
        competence_reason: row.competence_reason.clone(),
        limitation_date: row.limitation_date,
        offence_codes: referral.offence_codes.clone(),
        parties: referral.parties.clone(),
    }
}

/// A change that lost a race with another one on the same referral.
fn changed_meanwhile() -> AppError {
    AppError::Conflict("La saisine a été modifiée entre-temps ; rechargez-la.".into())
}
