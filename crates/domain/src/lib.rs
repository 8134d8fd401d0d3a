//! The rules of Info Parquet, free of IO: everything here is a pure function of its inputs,
//! so it can be tested exhaustively and reused by the web layer, the CLI and the store.

pub mod calendar;
pub mod competence;
pub mod identifiers;
pub mod integrity;
pub mod limitation;
pub mod permissions;
pub mod referral;
pub mod stats;
pub mod text;

pub use identifiers::{InseeCode, NatinfCode, ParquetNumber, Siren, Siret};
pub use referral::{Action, DecisionKind, Kind, Status, Urgency};

use serde::{Deserialize, Serialize};

/// Who a user is for the platform. A user belongs to exactly one organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Drafts and sends its own referrals (agent, rédacteur).
    Agent,
    /// Sees all referrals of its service and validates them when required (référent).
    Referent,
    /// Bureau d'ordre of a parquet: receives, registers, assigns, records decisions (greffier).
    Clerk,
    /// Magistrate of a parquet: decides the orientation (substitut, procureur).
    Prosecutor,
    /// Platform administrator: manages organisations and users, reads no referral content.
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Agent,
        Role::Referent,
        Role::Clerk,
        Role::Prosecutor,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Referent => "referent",
            Role::Clerk => "clerk",
            Role::Prosecutor => "prosecutor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(value: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == value)
    }

    /// The French label shown in the interface.
    pub fn label_fr(self) -> &'static str {
        match self {
            Role::Agent => "Agent",
            Role::Referent => "Référent",
            Role::Clerk => "Greffier (bureau d'ordre)",
            Role::Prosecutor => "Magistrat du parquet",
            Role::Admin => "Administrateur de la plateforme",
        }
    }

    /// The kind of organisation a user of this role must belong to.
    pub fn organisation_kind(self) -> OrganisationKind {
        match self {
            Role::Agent | Role::Referent => OrganisationKind::Administration,
            Role::Clerk | Role::Prosecutor => OrganisationKind::Parquet,
            Role::Admin => OrganisationKind::Platform,
        }
    }

    pub fn is_sender(self) -> bool {
        matches!(self, Role::Agent | Role::Referent)
    }

    pub fn is_parquet(self) -> bool {
        matches!(self, Role::Clerk | Role::Prosecutor)
    }

    /// Who manages an organisation's API tokens and webhooks: the référent of an
    /// administration, the bureau d'ordre of a parquet.
    pub fn manages_integrations(self) -> bool {
        matches!(self, Role::Referent | Role::Clerk)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrganisationKind {
    Administration,
    Parquet,
    Platform,
}

impl OrganisationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrganisationKind::Administration => "administration",
            OrganisationKind::Parquet => "parquet",
            OrganisationKind::Platform => "platform",
        }
    }

    pub fn parse(value: &str) -> Option<OrganisationKind> {
        [
            OrganisationKind::Administration,
            OrganisationKind::Parquet,
            OrganisationKind::Platform,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == value)
    }
}
