//! The mandatory pages of a public service (accessibility statement, legal notice, personal
//! data), and the French "page not found".

use super::{render, Layout};
use crate::auth::MaybeSessionUser;
use crate::error::{ApiError, AppError};
use crate::AppState;
use askama::Template;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/accessibilite", get(accessibility))
        .route("/mentions-legales", get(legal_notice))
        .route("/donnees-personnelles", get(personal_data))
}

#[derive(Template)]
#[template(path = "legal.html")]
struct LegalPage {
    layout: Layout,
    title: &'static str,
    sections: Vec<(&'static str, Vec<&'static str>)>,
}

async fn accessibility(MaybeSessionUser(user): MaybeSessionUser) -> Response {
    render(&LegalPage {
        layout: Layout::maybe(&user, ""),
        title: "Déclaration d'accessibilité",
        sections: vec![
            ("État de conformité", vec![
                "Info Parquet est partiellement conforme au référentiel général d'amélioration de l'accessibilité (RGAA 4.1) : aucun audit complet n'a encore été réalisé.",
                "Chaque page des parcours principaux (connexion, rédaction et envoi d'une saisine, accusé de réception, corbeille du parquet, décision, indicateurs, permanence, notifications) est contrôlée automatiquement par axe-core dans un navigateur réel à chaque modification du code : zéro anomalie détectée.",
            ]),
            ("Technologies", vec!["HTML5, CSS (Système de design de l'État), JavaScript facultatif : toutes les actions essentielles fonctionnent sans JavaScript. Les accusés de réception et avis de décision sont des PDF balisés."]),
            ("Retour d'information et contact", vec!["Si vous ne parvenez pas à accéder à un contenu ou à un service, contactez le support de la plateforme pour être orienté vers une alternative accessible."]),
            ("Voie de recours", vec!["Si vous constatez un défaut d'accessibilité vous empêchant d'accéder à un contenu et que vous n'obtenez pas de réponse, vous pouvez saisir le Défenseur des droits."]),
        ],
    })
}

async fn legal_notice(MaybeSessionUser(user): MaybeSessionUser) -> Response {
    render(&LegalPage {
        layout: Layout::maybe(&user, ""),
        title: "Mentions légales",
        sections: vec![
            ("Éditeur", vec!["Ministère de la Justice — plateforme Info Parquet, service en construction."]),
            ("Objet", vec!["Info Parquet permet aux administrations de saisir le procureur de la République (article 40 du code de procédure pénale) et de suivre la suite donnée (article 40-2)."]),
            ("Hébergement", vec!["L'hébergeur est précisé lors de la mise en production."]),
            ("Logiciels libres", vec!["Le Système de design de l'État (DSFR) est utilisé sous sa licence ; les données de référence (COG, NATINF, tribunaux) sont publiées sous Licence Ouverte 2.0."]),
        ],
    })
}

async fn personal_data(MaybeSessionUser(user): MaybeSessionUser) -> Response {
    render(&LegalPage {
        layout: Layout::maybe(&user, ""),
        title: "Données personnelles",
        sections: vec![
            ("Traitement", vec!["Les saisines contiennent des données relatives à des infractions, traitées pour la transmission au procureur de la République et le suivi de la décision (code de procédure pénale, articles 40 et suivants)."]),
            ("Accès", vec![
                "Une administration ne voit que ses propres saisines ; un parquet ne voit que celles qui lui sont adressées ; les administrateurs de la plateforme n'accèdent pas au contenu des saisines.",
                "Chaque consultation d'une saisine ou d'un document est inscrite dans un journal infalsifiable (chaînage SHA-256 et points de contrôle signés).",
            ]),
            ("Courriels", vec!["Les notifications par courriel ne contiennent que la référence de la saisine et un lien : jamais son contenu."]),
            ("Cookies", vec!["Un seul cookie, strictement nécessaire : la session de connexion (HttpOnly, SameSite). Aucun traceur, aucune mesure d'audience tierce."]),
            ("Vos droits", vec!["Les droits d'accès et de rectification s'exercent auprès du responsable de traitement, dans les limites prévues pour les traitements en matière pénale."]),
        ],
    })
}

/// Unknown paths: problem+json under /api, a French page elsewhere.
pub async fn not_found(uri: Uri, MaybeSessionUser(user): MaybeSessionUser) -> Response {
    if uri.path().starts_with("/api/") {
        return ApiError(AppError::NotFound).into_response();
    }
    let page = super::ErrorPage {
        layout: Layout::maybe(&user, ""),
        title: "Page introuvable",
        detail: "La page demandée n'existe pas ou n'est plus disponible. Vérifiez l'adresse, ou revenez à l'accueil.".into(),
        status: 404,
    };
    (StatusCode::NOT_FOUND, render(&page)).into_response()
}
