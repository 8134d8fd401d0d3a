//! Who may see what. Tenancy is decided here and nowhere else: an administration sees its own
//! referrals (an agent its own, a référent its service's), a parquet those addressed to it once
//! sent, and a platform administrator no referral content at all.

use crate::{Role, Status};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The authenticated person acting, as far as the rules are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Uuid,
    pub organisation_id: Uuid,
    pub role: Role,
}

/// The facts about a referral that decide who may see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReferralScope {
    pub administration_id: Uuid,
    pub author_id: Uuid,
    pub parquet_id: Option<Uuid>,
    pub status: Status,
}

pub fn can_see_referral(actor: &Actor, referral: &ReferralScope) -> bool {
    match actor.role {
        Role::Agent => {
            referral.administration_id == actor.organisation_id
                && referral.author_id == actor.user_id
        }
        Role::Referent => referral.administration_id == actor.organisation_id,
        Role::Clerk | Role::Prosecutor => {
            referral.parquet_id == Some(actor.organisation_id)
                && !matches!(referral.status, Status::Draft | Status::AwaitingValidation)
        }
        Role::Admin => false,
    }
}

/// Who an event of the journal is meant for. Internal notes and investigation details stay
/// within the parquet; the sender sees what concerns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Both sides see it (sending, acknowledgement, registration, decision, messages…).
    Everyone,
    /// Only the sending administration sees it (drafting steps, validation).
    Sender,
    /// Only the parquet sees it (assignment, internal notes).
    Parquet,
}

impl Audience {
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Everyone => "everyone",
            Audience::Sender => "sender",
            Audience::Parquet => "parquet",
        }
    }

    pub fn parse(value: &str) -> Option<Audience> {
        [Audience::Everyone, Audience::Sender, Audience::Parquet]
            .into_iter()
            .find(|a| a.as_str() == value)
    }

    pub fn visible_to(self, role: Role) -> bool {
        match self {
            Audience::Everyone => role.is_sender() || role.is_parquet(),
            Audience::Sender => role.is_sender(),
            Audience::Parquet => role.is_parquet(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (Uuid, Uuid, Uuid, Uuid) {
        (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        )
    }

    #[test]
    fn tenancy_rules() {
        let (administration, parquet, author, other_user) = ids();
        let other_org = Uuid::now_v7();
        let referral = ReferralScope {
            administration_id: administration,
            author_id: author,
            parquet_id: Some(parquet),
            status: Status::Submitted,
        };
        let actor = |user_id, organisation_id, role| Actor {
            user_id,
            organisation_id,
            role,
        };

        assert!(can_see_referral(
            &actor(author, administration, Role::Agent),
            &referral
        ));
        assert!(
            !can_see_referral(&actor(other_user, administration, Role::Agent), &referral),
            "another agent of the service"
        );
        assert!(can_see_referral(
            &actor(other_user, administration, Role::Referent),
            &referral
        ));
        assert!(!can_see_referral(
            &actor(other_user, other_org, Role::Referent),
            &referral
        ));
        assert!(can_see_referral(
            &actor(other_user, parquet, Role::Clerk),
            &referral
        ));
        assert!(can_see_referral(
            &actor(other_user, parquet, Role::Prosecutor),
            &referral
        ));
        assert!(
            !can_see_referral(&actor(other_user, other_org, Role::Clerk), &referral),
            "another parquet"
        );
        assert!(!can_see_referral(
            &actor(other_user, parquet, Role::Admin),
            &referral
        ));

        let draft = ReferralScope {
            status: Status::Draft,
            ..referral
        };
        assert!(
            !can_see_referral(&actor(other_user, parquet, Role::Clerk), &draft),
            "parquets never see drafts"
        );
        assert!(can_see_referral(
            &actor(author, administration, Role::Agent),
            &draft
        ));
    }

    #[test]
    fn audiences() {
        assert!(Audience::Everyone.visible_to(Role::Agent));
        assert!(!Audience::Parquet.visible_to(Role::Referent));
        assert!(Audience::Parquet.visible_to(Role::Clerk));
        assert!(!Audience::Sender.visible_to(Role::Prosecutor));
        assert!(!Audience::Everyone.visible_to(Role::Admin));
    }
}
