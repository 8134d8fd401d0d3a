//! The referral's life: its statuses, the actions on it, and the one transition table that says
//! which role may do which action in which status.

use crate::Role;
use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal / $label:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The name used in the API and the database.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            /// The French label shown to people.
            pub fn label_fr(self) -> &'static str {
                match self { $($name::$variant => $label),* }
            }

            pub fn parse(value: &str) -> Option<$name> {
                match value { $($text => Some($name::$variant),)* _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Where a referral stands.
    Status {
        Draft => "draft" / "Brouillon",
        AwaitingValidation => "awaiting_validation" / "En attente de validation",
        Submitted => "submitted" / "Transmise",
        Registered => "registered" / "Enregistrée",
        UnderInvestigation => "under_investigation" / "Enquête en cours",
        ComplementRequested => "complement_requested" / "Complément demandé",
        AlternativeMeasure => "alternative_measure" / "Mesure alternative",
        Prosecuted => "prosecuted" / "Poursuites engagées",
        JudicialInvestigation => "judicial_investigation" / "Information judiciaire",
        Dismissed => "dismissed" / "Classée sans suite",
        Joined => "joined" / "Jointe à une procédure",
        Judged => "judged" / "Jugée",
        Closed => "closed" / "Clôturée",
        Withdrawn => "withdrawn" / "Retirée",
    }
);

string_enum!(
    /// What kind of referral the administration sends.
    Kind {
        Article40 => "article_40" / "Signalement (article 40 CPP)",
        OffenceReport => "offence_report" / "Procès-verbal d'infraction",
        Complaint => "complaint" / "Plainte",
        Report => "report" / "Rapport",
        Other => "other" / "Autre",
    }
);

string_enum!(
    /// How fast the parquet must react.
    Urgency {
        Normal => "normal" / "Normale",
        Urgent => "urgent" / "Urgente",
        Immediate => "immediate" / "Immédiate",
    }
);

string_enum!(
    /// The orientation decided by the parquet.
    DecisionKind {
        Dismissal => "dismissal" / "Classement sans suite",
        AlternativeMeasure => "alternative_measure" / "Mesure alternative aux poursuites",
        Prosecution => "prosecution" / "Poursuites",
        JudicialInvestigation => "judicial_investigation" / "Ouverture d'une information judiciaire",
        Joined => "joined" / "Jonction à une procédure existante",
    }
);

string_enum!(
    /// Alternative measures to prosecution (art. 41-1 CPP and following).
    AlternativeMeasureKind {
        Warning => "warning" / "Avertissement pénal probatoire",
        PenalComposition => "penal_composition" / "Composition pénale",
        Mediation => "mediation" / "Médiation",
        Reparation => "reparation" / "Réparation du dommage",
        Regularisation => "regularisation" / "Régularisation de la situation",
        Orientation => "orientation" / "Orientation vers une structure sanitaire, sociale ou professionnelle",
        Course => "course" / "Stage",
        Other => "other" / "Autre mesure",
    }
);

string_enum!(
    /// How the parquet brings the case before the court.
    ProsecutionMode {
        Copj => "copj" / "Convocation par officier de police judiciaire (COPJ)",
        Cpv => "cpv" / "Convocation par procès-verbal (CPV)",
        ImmediateAppearance => "immediate_appearance" / "Comparution immédiate",
        DirectSummons => "direct_summons" / "Citation directe",
        PenalOrder => "penal_order" / "Ordonnance pénale",
        Crpc => "crpc" / "Comparution sur reconnaissance préalable de culpabilité (CRPC)",
    }
);

string_enum!(
    JudgementOutcome {
        Conviction => "conviction" / "Condamnation",
        Acquittal => "acquittal" / "Relaxe ou acquittement",
        Other => "other" / "Autre issue",
    }
);

string_enum!(
    /// Everything that can be done to a referral. Each decision kind is its own action so that the
    /// table below can say exactly where each is allowed.
    Action {
        View => "view" / "Consulter",
        Edit => "edit" / "Modifier le brouillon",
        AddAttachment => "add_attachment" / "Ajouter une pièce",
        Submit => "submit" / "Transmettre",
        Validate => "validate" / "Valider et transmettre",
        ReturnToDraft => "return_to_draft" / "Renvoyer au rédacteur",
        Withdraw => "withdraw" / "Retirer",
        Acknowledge => "acknowledge" / "Accuser réception",
        Register => "register" / "Enregistrer",
        Assign => "assign" / "Attribuer à un magistrat",
        RequestComplement => "request_complement" / "Demander un complément",
        AnswerComplement => "answer_complement" / "Répondre à la demande de complément",
        OpenInvestigation => "open_investigation" / "Ouvrir une enquête",
        Transfer => "transfer" / "Transférer à un autre parquet",
        DecideDismissal => "decide_dismissal" / "Classer sans suite",
        DecideAlternativeMeasure => "decide_alternative_measure" / "Décider une mesure alternative",
        DecideProsecution => "decide_prosecution" / "Engager des poursuites",
        DecideJudicialInvestigation => "decide_judicial_investigation" / "Ouvrir une information judiciaire",
        DecideJoin => "decide_join" / "Joindre à une procédure",
        RecordMeasureSuccess => "record_measure_success" / "Constater la réussite de la mesure",
        RecordMeasureFailure => "record_measure_failure" / "Constater l'échec de la mesure",
        RecordJudgement => "record_judgement" / "Enregistrer le jugement",
        RecordAppeal => "record_appeal" / "Enregistrer un appel",
        Close => "close" / "Clôturer",
        PostMessage => "post_message" / "Écrire un message",
        RequestNews => "request_news" / "Demander des nouvelles",
        AddNote => "add_note" / "Ajouter une note interne",
    }
);

impl DecisionKind {
    pub fn action(self) -> Action {
        match self {
            DecisionKind::Dismissal => Action::DecideDismissal,
            DecisionKind::AlternativeMeasure => Action::DecideAlternativeMeasure,
            DecisionKind::Prosecution => Action::DecideProsecution,
            DecisionKind::JudicialInvestigation => Action::DecideJudicialInvestigation,
            DecisionKind::Joined => Action::DecideJoin,
        }
    }
}

impl Status {
    /// Statuses in which the parquet has taken its orientation decision.
    pub fn is_decided(self) -> bool {
        matches!(
            self,
            Status::AlternativeMeasure
                | Status::Prosecuted
                | Status::JudicialInvestigation
                | Status::Dismissed
                | Status::Joined
                | Status::Judged
                | Status::Closed
        )
    }

    /// The DSFR badge variant that conveys the status at a glance.
    pub fn badge_class(self) -> &'static str {
        match self {
            Status::Draft | Status::Withdrawn | Status::Closed => "fr-badge--info",
            Status::AwaitingValidation | Status::ComplementRequested => "fr-badge--warning",
            Status::Submitted | Status::Registered | Status::UnderInvestigation => "fr-badge--new",
            Status::Dismissed => "fr-badge--error",
            _ => "fr-badge--success",
        }
    }
}

/// Where an allowed action leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The status does not change (acknowledge, assign, message…).
    Stay,
    /// The referral moves to this status.
    To(Status),
    /// Submit: to `AwaitingValidation` when the service requires a référent's validation and the
    /// sender is not a référent, else to `Submitted`.
    SubmitOrAwaitValidation,
    /// Answering a complement request returns the referral to where it was before the request.
    Resume,
}

pub struct Transition {
    pub action: Action,
    pub from: &'static [Status],
    pub roles: &'static [Role],
    pub target: Target,
}

use Role::{Agent, Clerk, Prosecutor, Referent};
use Status::*;

const SENDERS: &[Role] = &[Agent, Referent];
const PARQUET: &[Role] = &[Clerk, Prosecutor];
const EVERYONE_INVOLVED: &[Role] = &[Agent, Referent, Clerk, Prosecutor];
const BEFORE_DECISION: &[Status] = &[Registered, UnderInvestigation];
const SENT: &[Status] = &[
    Submitted,
    Registered,
    UnderInvestigation,
    ComplementRequested,
    AlternativeMeasure,
    Prosecuted,
    JudicialInvestigation,
    Dismissed,
    Joined,
    Judged,
    Closed,
];
const OPEN_AFTER_SENDING: &[Status] = &[
    Submitted,
    Registered,
    UnderInvestigation,
    ComplementRequested,
    AlternativeMeasure,
    Prosecuted,
    JudicialInvestigation,
    Dismissed,
    Joined,
    Judged,
];

/// The single source of truth for the state machine. The web layer, the API and the tests all
/// read this table; nothing else decides whether an action is allowed.
pub const TRANSITIONS: &[Transition] = &[
    Transition {
        action: Action::View,
        from: Status::ALL,
        roles: EVERYONE_INVOLVED,
        target: Target::Stay,
    },
    Transition {
        action: Action::Edit,
        from: &[Draft],
        roles: SENDERS,
        target: Target::Stay,
    },
    Transition {
        action: Action::AddAttachment,
        from: &[
            Draft,
            AwaitingValidation,
            Submitted,
            Registered,
            UnderInvestigation,
            ComplementRequested,
            AlternativeMeasure,
            Prosecuted,
            JudicialInvestigation,
            Dismissed,
            Joined,
            Judged,
        ],
        roles: SENDERS,
        target: Target::Stay,
    },
    Transition {
        action: Action::Submit,
        from: &[Draft],
        roles: SENDERS,
        target: Target::SubmitOrAwaitValidation,
    },
    Transition {
        action: Action::Validate,
        from: &[AwaitingValidation],
        roles: &[Referent],
        target: Target::To(Submitted),
    },
    Transition {
        action: Action::ReturnToDraft,
        from: &[AwaitingValidation],
        roles: &[Referent],
        target: Target::To(Draft),
    },
    Transition {
        action: Action::Withdraw,
        from: &[Draft, AwaitingValidation, Submitted],
        roles: SENDERS,
        target: Target::To(Withdrawn),
    },
    Transition {
        action: Action::Acknowledge,
        from: &[Submitted],
        roles: PARQUET,
        target: Target::Stay,
    },
    Transition {
        action: Action::Register,
        from: &[Submitted],
        roles: &[Clerk],
        target: Target::To(Registered),
    },
    Transition {
        action: Action::Assign,
        from: &[
            Submitted,
            Registered,
            UnderInvestigation,
            ComplementRequested,
            AlternativeMeasure,
            Prosecuted,
            JudicialInvestigation,
        ],
        roles: &[Clerk],
        target: Target::Stay,
    },
    Transition {
        action: Action::RequestComplement,
        from: &[Submitted, Registered, UnderInvestigation],
        roles: PARQUET,
        target: Target::To(ComplementRequested),
    },
    Transition {
        action: Action::AnswerComplement,
        from: &[ComplementRequested],
        roles: SENDERS,
        target: Target::Resume,
    },
    Transition {
        action: Action::OpenInvestigation,
        from: &[Registered],
        roles: PARQUET,
        target: Target::To(UnderInvestigation),
    },
    Transition {
        action: Action::Transfer,
        from: &[Submitted, Registered],
        roles: PARQUET,
        target: Target::To(Submitted),
    },
    Transition {
        action: Action::DecideDismissal,
        from: BEFORE_DECISION,
        roles: PARQUET,
        target: Target::To(Dismissed),
    },
    Transition {
        action: Action::DecideAlternativeMeasure,
        from: BEFORE_DECISION,
        roles: PARQUET,
        target: Target::To(AlternativeMeasure),
    },
    Transition {
        action: Action::DecideProsecution,
        from: BEFORE_DECISION,
        roles: PARQUET,
        target: Target::To(Prosecuted),
    },
    Transition {
        action: Action::DecideJudicialInvestigation,
        from: BEFORE_DECISION,
        roles: PARQUET,
        target: Target::To(JudicialInvestigation),
    },
    Transition {
        action: Action::DecideJoin,
        from: BEFORE_DECISION,
        roles: PARQUET,
        target: Target::To(Joined),
    },
    Transition {
        action: Action::RecordMeasureSuccess,
        from: &[AlternativeMeasure],
        roles: PARQUET,
        target: Target::To(Dismissed),
    },
    Transition {
        action: Action::RecordMeasureFailure,
        from: &[AlternativeMeasure],
        roles: PARQUET,
        target: Target::To(Prosecuted),
    },
    Transition {
        action: Action::RecordJudgement,
        from: &[Prosecuted, JudicialInvestigation],
        roles: PARQUET,
        target: Target::To(Judged),
    },
    Transition {
        action: Action::RecordAppeal,
        from: &[Judged],
        roles: PARQUET,
        target: Target::Stay,
    },
    Transition {
        action: Action::Close,
        from: &[Dismissed, Joined, Judged],
        roles: PARQUET,
        target: Target::To(Closed),
    },
    Transition {
        action: Action::PostMessage,
        from: SENT,
        roles: EVERYONE_INVOLVED,
        target: Target::Stay,
    },
    Transition {
        action: Action::RequestNews,
        from: &[
            Submitted,
            Registered,
            UnderInvestigation,
            AlternativeMeasure,
            Prosecuted,
            JudicialInvestigation,
        ],
        roles: SENDERS,
        target: Target::Stay,
    },
    Transition {
        action: Action::AddNote,
        from: OPEN_AFTER_SENDING,
        roles: PARQUET,
        target: Target::Stay,
    },
];

/// Why an action was refused. The web layer maps the first to 403 and the second to 409.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("votre rôle ne permet pas l'action « {0} »")]
    RoleNotAllowed(&'static str),
    #[error("l'action « {action} » n'est pas possible quand la saisine est « {status} »")]
    NotAllowedInStatus {
        action: &'static str,
        status: &'static str,
    },
}

/// Facts about the referral that the table's targets depend on.
#[derive(Debug, Clone, Copy, Default)]
pub struct TransitionContext {
    pub service_requires_validation: bool,
    /// The status before a complement was requested.
    pub status_before_complement: Option<Status>,
}

/// Decides whether `role` may do `action` on a referral in `status`, and where it leads.
/// The role check comes first: a role that may never do an action gets 403 whatever the status.
pub fn transition(
    status: Status,
    action: Action,
    role: Role,
    context: TransitionContext,
) -> Result<Status, TransitionError> {
    let rule = TRANSITIONS
        .iter()
        .find(|rule| rule.action == action)
        .filter(|rule| rule.roles.contains(&role))
        .ok_or(TransitionError::RoleNotAllowed(action.label_fr()))?;
    if !rule.from.contains(&status) {
        return Err(TransitionError::NotAllowedInStatus {
            action: action.label_fr(),
            status: status.label_fr(),
        });
    }
    Ok(match rule.target {
        Target::Stay => status,
        Target::To(next) => next,
        Target::SubmitOrAwaitValidation => {
            if context.service_requires_validation && role != Role::Referent {
                AwaitingValidation
            } else {
                Submitted
            }
        }
        Target::Resume => context.status_before_complement.unwrap_or(Submitted),
    })
}

/// The actions a role may take now, in table order: what the pages show as buttons.
pub fn available_actions(status: Status, role: Role) -> Vec<Action> {
    TRANSITIONS
        .iter()
        .filter(|rule| rule.roles.contains(&role) && rule.from.contains(&status))
        .map(|rule| rule.action)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected outcome of every (status × action × role), written independently of the table
    /// as a list of allowed triples; everything not listed must be refused.
    fn expected(status: Status, action: Action, role: Role) -> Result<Status, TransitionError> {
        let sender = role.is_sender();
        let parquet = role.is_parquet();
        let involved = sender || parquet;
        let role_ok = match action {
            Action::View | Action::PostMessage => involved,
            Action::Edit
            | Action::AddAttachment
            | Action::Submit
            | Action::Withdraw
            | Action::AnswerComplement => sender,
            Action::Validate | Action::ReturnToDraft => role == Referent,
            Action::RequestNews => sender,
            Action::Register | Action::Assign => role == Clerk,
            _ => parquet,
        };
        if !role_ok {
            return Err(TransitionError::RoleNotAllowed(action.label_fr()));
        }
        let before_decision = matches!(status, Registered | UnderInvestigation);
        let next = match (action, status) {
            (Action::View, s) => Some(s),
            (Action::Edit, Draft) => Some(Draft),
            (Action::AddAttachment, s) if !matches!(s, Withdrawn | Closed) => Some(s),
            (Action::Submit, Draft) => Some(Submitted),
            (Action::Validate, AwaitingValidation) => Some(Submitted),
            (Action::ReturnToDraft, AwaitingValidation) => Some(Draft),
            (Action::Withdraw, Draft | AwaitingValidation | Submitted) => Some(Withdrawn),
            (Action::Acknowledge, Submitted) => Some(Submitted),
            (Action::Register, Submitted) => Some(Registered),
            (Action::Assign, s)
                if matches!(
                    s,
                    Submitted
                        | Registered
                        | UnderInvestigation
                        | ComplementRequested
                        | AlternativeMeasure
                        | Prosecuted
                        | JudicialInvestigation
                ) =>
            {
                Some(s)
            }
            (Action::RequestComplement, Submitted | Registered | UnderInvestigation) => {
                Some(ComplementRequested)
            }
            (Action::AnswerComplement, ComplementRequested) => Some(Submitted),
            (Action::OpenInvestigation, Registered) => Some(UnderInvestigation),
            (Action::Transfer, Submitted | Registered) => Some(Submitted),
            (Action::DecideDismissal, _) if before_decision => Some(Dismissed),
            (Action::DecideAlternativeMeasure, _) if before_decision => Some(AlternativeMeasure),
            (Action::DecideProsecution, _) if before_decision => Some(Prosecuted),
            (Action::DecideJudicialInvestigation, _) if before_decision => {
                Some(JudicialInvestigation)
            }
            (Action::DecideJoin, _) if before_decision => Some(Joined),
            (Action::RecordMeasureSuccess, AlternativeMeasure) => Some(Dismissed),
            (Action::RecordMeasureFailure, AlternativeMeasure) => Some(Prosecuted),
            (Action::RecordJudgement, Prosecuted | JudicialInvestigation) => Some(Judged),
            (Action::RecordAppeal, Judged) => Some(Judged),
            (Action::Close, Dismissed | Joined | Judged) => Some(Closed),
            (Action::PostMessage, s) => {
                (!matches!(s, Draft | AwaitingValidation | Withdrawn)).then_some(s)
            }
            // Asking for news makes sense while the matter is pending at the parquet.
            (
                Action::RequestNews,
                s @ (Submitted
                | Registered
                | UnderInvestigation
                | AlternativeMeasure
                | Prosecuted
                | JudicialInvestigation),
            ) => Some(s),
            (Action::AddNote, s) => {
                (!matches!(s, Draft | AwaitingValidation | Withdrawn | Closed)).then_some(s)
            }
            _ => None,
        };
        next.ok_or(TransitionError::NotAllowedInStatus {
            action: action.label_fr(),
            status: status.label_fr(),
        })
    }

    #[test]
    fn every_status_action_role_combination() {
        let mut checked = 0;
        for &status in Status::ALL {
            for &action in Action::ALL {
                for role in Role::ALL {
                    let got = transition(status, action, role, TransitionContext::default());
                    assert_eq!(
                        got,
                        expected(status, action, role),
                        "{status} × {action} × {role:?}"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(
            checked,
            Status::ALL.len() * Action::ALL.len() * Role::ALL.len()
        );
        println!("state machine: {checked} (status × action × role) combinations checked");
    }

    #[test]
    fn submit_goes_through_validation_when_the_service_requires_it() {
        let ctx = TransitionContext {
            service_requires_validation: true,
            ..Default::default()
        };
        assert_eq!(
            transition(Draft, Action::Submit, Agent, ctx),
            Ok(AwaitingValidation)
        );
        assert_eq!(
            transition(Draft, Action::Submit, Referent, ctx),
            Ok(Submitted)
        );
    }

    #[test]
    fn answering_a_complement_resumes_the_previous_status() {
        let ctx = TransitionContext {
            status_before_complement: Some(UnderInvestigation),
            ..Default::default()
        };
        assert_eq!(
            transition(ComplementRequested, Action::AnswerComplement, Agent, ctx),
            Ok(UnderInvestigation)
        );
    }

    #[test]
    fn every_action_has_exactly_one_rule() {
        for &action in Action::ALL {
            assert_eq!(
                TRANSITIONS
                    .iter()
                    .filter(|rule| rule.action == action)
                    .count(),
                1,
                "{action}"
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for &status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        assert_eq!(Status::ALL.len(), 14);
        assert_eq!(
            DecisionKind::parse("dismissal"),
            Some(DecisionKind::Dismissal)
        );
        assert_eq!(ProsecutionMode::ALL.len(), 6);
        assert_eq!(AlternativeMeasureKind::ALL.len(), 8);
    }

    #[test]
    fn available_actions_for_a_clerk_on_a_new_referral() {
        let actions = available_actions(Submitted, Clerk);
        assert!(actions.contains(&Action::Acknowledge));
        assert!(actions.contains(&Action::Register));
        assert!(!actions.contains(&Action::DecideDismissal));
    }
}
