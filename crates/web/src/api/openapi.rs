//! The OpenAPI 3.1 description of the API, served at `/api/openapi.json`, and a documentation
//! page served by the application itself (no CDN). A test checks that every documented path is
//! routed and every routed API path is documented.

use crate::AppState;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/openapi.json", get(document))
        .route("/api/docs", get(docs_page))
}

async fn document() -> impl IntoResponse {
    Json(openapi())
}

fn problem_responses(codes: &[&str]) -> Map<String, Value> {
    let mut responses = Map::new();
    for code in codes {
        let description = match *code {
            "400" => "Requête mal formée",
            "401" => "Jeton absent ou invalide",
            "403" => "Action non autorisée pour ce rôle",
            "404" => "Inconnu ou non visible",
            "409" => "Action impossible dans l'état actuel",
            "413" => "Trop volumineux",
            "415" => "Type de contenu non accepté",
            "422" => "Champ invalide",
            _ => "Erreur",
        };
        responses.insert(
            (*code).to_string(),
            json!({"description": description, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}),
        );
    }
    // Every authenticated operation counts against its token's budget.
    if codes.contains(&"401") {
        responses.insert(
            "429".into(),
            json!({
                "description": "Trop de requêtes pour ce jeton",
                "headers": {"Retry-After": {"description": "Secondes à attendre", "schema": {"type": "integer", "minimum": 1}}},
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
            }),
        );
    }
    responses
}

fn operation(
    summary: &str,
    ok_code: &str,
    ok_schema: Value,
    errors: &[&str],
    body: Option<Value>,
) -> Value {
    let mut responses = problem_responses(errors);
    let ok = if ok_schema.is_null() {
        json!({"description": "OK"})
    } else {
        json!({"description": "OK", "content": {"application/json": {"schema": ok_schema}}})
    };
    responses.insert(ok_code.to_string(), ok);
    let mut op = json!({"summary": summary, "responses": responses});
    if let Some(body) = body {
        op["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": body}}});
    }
    op
}

fn id_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn action(summary: &str, body: Option<Value>) -> Value {
    let mut op = operation(
        summary,
        "200",
        reference("Referral"),
        &["400", "401", "403", "404", "409", "415", "422"],
        body,
    );
    op["parameters"] = json!([id_param("id")]);
    op
}

fn text_body(field: &str) -> Value {
    json!({"type": "object", "properties": {field: {"type": "string"}}, "required": [field]})
}

/// The OpenAPI document.
pub fn openapi() -> Value {
    let nullable_string = json!({"type": ["string", "null"]});
    let nullable_date = json!({"type": ["string", "null"], "format": "date"});
    let nullable_instant = json!({"type": ["string", "null"], "format": "date-time"});
    let referral_input = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "kind": {"type": "string", "enum": ["article_40", "offence_report", "complaint", "report", "other"]},
            "urgency": {"type": "string", "enum": ["normal", "urgent", "immediate"]},
            "title": {"type": "string", "maxLength": 200},
            "facts": {"type": "string"},
            "administration_reference": nullable_string,
            "facts_started_on": nullable_date,
            "facts_ended_on": nullable_date,
            "place": {"type": ["object", "null"], "properties": {"commune_insee": nullable_string, "address": nullable_string}},
            "offence_codes": {"type": "array", "items": {"type": "integer"}},
            "parties": {"type": "array", "items": reference("Party")},
            "parquet_id": {"type": ["string", "null"], "format": "uuid"},
            "competence_reason": nullable_string
        }
    });
    let mut paths = Map::new();
    let list_params = json!([
        {"name": "status", "in": "query", "schema": {"type": "string"}},
        {"name": "urgency", "in": "query", "schema": {"type": "string"}},
        {"name": "q", "in": "query", "schema": {"type": "string"}},
        {"name": "parquet_id", "in": "query", "schema": {"type": "string", "format": "uuid"}},
        {"name": "administration_id", "in": "query", "schema": {"type": "string", "format": "uuid"}},
        {"name": "overdue", "in": "query", "schema": {"type": "boolean"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}}
    ]);
    let mut list = operation(
        "Saisines visibles par l'appelant",
        "200",
        reference("ReferralList"),
        &["401", "403", "422"],
        None,
    );
    list["parameters"] = list_params;
    let create = operation(
        "Créer un brouillon",
        "201",
        reference("Referral"),
        &["400", "401", "403", "415", "422"],
        Some(referral_input.clone()),
    );
    paths.insert(
        "/api/v1/referrals".into(),
        json!({"get": list, "post": create}),
    );
    let mut show = operation(
        "Une saisine",
        "200",
        reference("Referral"),
        &["401", "404"],
        None,
    );
    show["parameters"] = json!([id_param("id")]);
    let mut patch = operation(
        "Modifier un brouillon",
        "200",
        reference("Referral"),
        &["400", "401", "403", "404", "409", "415", "422"],
        Some(referral_input),
    );
    patch["parameters"] = json!([id_param("id")]);
    paths.insert(
        "/api/v1/referrals/{id}".into(),
        json!({"get": show, "patch": patch}),
    );

    let mut upload = operation(
        "Joindre un document (corps brut)",
        "201",
        reference("Attachment"),
        &["401", "403", "404", "409", "413", "422"],
        None,
    );
    upload["parameters"] = json!([id_param("id"), {"name": "filename", "in": "query", "required": true, "schema": {"type": "string"}}, {"name": "kind", "in": "query", "schema": {"type": "string"}}]);
    upload["requestBody"] = json!({"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}});
    paths.insert(
        "/api/v1/referrals/{id}/attachments".into(),
        json!({"post": upload}),
    );
    let mut download = operation(
        "Télécharger un document",
        "200",
        Value::Null,
        &["401", "404"],
        None,
    );
    download["parameters"] = json!([id_param("id"), id_param("attachment_id")]);
    paths.insert(
        "/api/v1/referrals/{id}/attachments/{attachment_id}".into(),
        json!({"get": download}),
    );

    let mut submit = operation(
        "Transmettre (ou soumettre à validation)",
        "200",
        reference("SubmitResult"),
        &["401", "403", "404", "409", "422"],
        None,
    );
    submit["parameters"] = json!([id_param("id")]);
    paths.insert(
        "/api/v1/referrals/{id}/submit".into(),
        json!({"post": submit.clone()}),
    );
    let mut validate = submit.clone();
    validate["summary"] = json!("Valider et transmettre (référent)");
    paths.insert(
        "/api/v1/referrals/{id}/validate".into(),
        json!({"post": validate}),
    );
    for (path, summary, body) in [
        (
            "return",
            "Renvoyer le brouillon au rédacteur",
            Some(text_body("comment")),
        ),
        ("withdraw", "Retirer avant enregistrement", None),
        ("acknowledge", "Accuser réception", None),
        (
            "register",
            "Enregistrer avec un numéro parquet",
            Some(text_body("parquet_number")),
        ),
        (
            "assign",
            "Attribuer à un magistrat",
            Some(
                json!({"type": "object", "properties": {"user_id": {"type": "string", "format": "uuid"}}, "required": ["user_id"]}),
            ),
        ),
        (
            "request-complement",
            "Demander un complément",
            Some(text_body("message")),
        ),
        (
            "complement",
            "Répondre à une demande de complément",
            Some(text_body("message")),
        ),
        ("investigation", "Ouvrir une enquête", None),
        (
            "transfer",
            "Transférer à un autre parquet",
            Some(
                json!({"type": "object", "properties": {"parquet_id": {"type": "string", "format": "uuid"}, "reason": {"type": "string"}}, "required": ["parquet_id", "reason"]}),
            ),
        ),
        (
            "decision",
            "Décider (avis de l'article 40-2)",
            Some(reference("DecisionInput")),
        ),
        (
            "measure-outcome",
            "Issue d'une mesure alternative",
            Some(
                json!({"type": "object", "properties": {"success": {"type": "boolean"}, "mode": {"type": "string"}}, "required": ["success"]}),
            ),
        ),
        (
            "judgement",
            "Enregistrer un jugement ou un appel",
            Some(
                json!({"type": "object", "properties": {"date": {"type": "string", "format": "date"}, "outcome": {"type": "string", "enum": ["conviction", "acquittal", "other"]}, "summary": {"type": "string"}, "appeal": {"type": "boolean"}}, "required": ["date", "outcome"]}),
            ),
        ),
        ("close", "Clôturer", None),
        (
            "news-request",
            "Demander des nouvelles (une fois par mois au plus)",
            None,
        ),
    ] {
        paths.insert(
            format!("/api/v1/referrals/{{id}}/{path}"),
            json!({"post": action(summary, body)}),
        );
    }
    let mut note = operation(
        "Note interne (jamais visible par l'expéditeur)",
        "201",
        reference("Message"),
        &["401", "403", "404", "409", "422"],
        Some(text_body("body")),
    );
    note["parameters"] = json!([id_param("id")]);
    paths.insert("/api/v1/referrals/{id}/notes".into(), json!({"post": note}));
    let mut messages = operation(
        "Messages entre l'expéditeur et le parquet",
        "200",
        json!({"type": "object", "properties": {"items": {"type": "array", "items": reference("Message")}, "next_cursor": nullable_string}}),
        &["401", "404"],
        None,
    );
    messages["parameters"] = json!([id_param("id")]);
    let mut post_message = operation(
        "Écrire un message",
        "201",
        reference("Message"),
        &["401", "403", "404", "409", "422"],
        Some(text_body("body")),
    );
    post_message["parameters"] = json!([id_param("id")]);
    paths.insert(
        "/api/v1/referrals/{id}/messages".into(),
        json!({"get": messages, "post": post_message}),
    );
    let mut events = operation(
        "Historique visible par l'appelant",
        "200",
        json!({"type": "array", "items": reference("Event")}),
        &["401", "404"],
        None,
    );
    events["parameters"] = json!([id_param("id")]);
    paths.insert(
        "/api/v1/referrals/{id}/events".into(),
        json!({"get": events}),
    );
    for (path, summary) in [
        ("receipt.pdf", "Accusé de réception (PDF)"),
        ("decision-notice.pdf", "Avis de l'article 40-2 (PDF)"),
        ("export.zip", "Export pour la chaîne pénale (ZIP)"),
    ] {
        let mut op = operation(
            summary,
            "200",
            Value::Null,
            &["401", "403", "404", "409"],
            None,
        );
        op["parameters"] = json!([id_param("id")]);
        paths.insert(
            format!("/api/v1/referrals/{{id}}/{path}"),
            json!({"get": op}),
        );
    }
    let q = json!([{"name": "q", "in": "query", "schema": {"type": "string"}}, {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}}]);
    let mut communes = operation(
        "Communes (nom, code INSEE ou code postal) et parquet compétent",
        "200",
        json!({"type": "array", "items": reference("Commune")}),
        &["401"],
        None,
    );
    communes["parameters"] = q.clone();
    paths.insert(
        "/api/v1/reference/communes".into(),
        json!({"get": communes}),
    );
    let mut offences = operation(
        "Infractions NATINF (numéro ou mots)",
        "200",
        json!({"type": "array", "items": reference("Offence")}),
        &["401"],
        None,
    );
    offences["parameters"] = q;
    paths.insert(
        "/api/v1/reference/offences".into(),
        json!({"get": offences}),
    );
    paths.insert("/api/v1/reference/parquets".into(), json!({"get": operation("Les parquets", "200", json!({"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}, "name": {"type": "string"}, "court_code": nullable_string, "departement": nullable_string}}}), &["401"], None)}));
    paths.insert("/api/v1/reference/dismissal-reasons".into(), json!({"get": operation("Grille des motifs de classement", "200", json!({"type": "array", "items": {"type": "object", "properties": {"code": {"type": "string"}, "label": {"type": "string"}}, "required": ["code", "label"]}}), &["401"], None)}));
    let mut receipt = operation(
        "Vérifier un accusé de réception (public, sans donnée personnelle)",
        "200",
        reference("ReceiptCheck"),
        &["404"],
        None,
    );
    receipt["parameters"] = json!([id_param("verification_code")]);
    receipt["security"] = json!([]);
    paths.insert(
        "/api/v1/receipts/{verification_code}".into(),
        json!({"get": receipt}),
    );
    let mut checkpoints = operation(
        "Points de contrôle signés du journal (public)",
        "200",
        json!({"type": "array", "items": {"type": "object"}}),
        &[],
        None,
    );
    checkpoints["security"] = json!([]);
    paths.insert(
        "/api/v1/audit/checkpoints".into(),
        json!({"get": checkpoints}),
    );

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Info Parquet API",
            "version": "1.0.0",
            "description": "Les saisines des administrations au procureur de la République : envoi, suivi, décisions (art. 40-2 CPP). Authentification : `Authorization: Bearer <jeton>`. Erreurs : RFC 9457 (application/problem+json). `Idempotency-Key` accepté sur les POST de création."
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Problem": {"type": "object", "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"}, "errors": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}}}, "required": ["type", "title", "status", "detail"]},
                "Party": {"type": "object", "properties": {"role": {"type": "string", "enum": ["suspect", "victim", "witness"]}, "kind": {"type": "string", "enum": ["person", "organisation"]}, "last_name": nullable_string, "first_names": nullable_string, "birth_date": nullable_date, "name": nullable_string, "siren": nullable_string, "siret": nullable_string, "address": nullable_string}, "required": ["role", "kind"]},
                "Attachment": {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}, "filename": {"type": "string"}, "media_type": {"type": "string"}, "size": {"type": "integer"}, "sha256": {"type": "string"}, "kind": {"type": "string"}, "uploaded_at": {"type": "string", "format": "date-time"}}, "required": ["id", "filename", "media_type", "size", "sha256", "kind", "uploaded_at"]},
                "Decision": {"type": ["object", "null"], "properties": {"kind": {"type": "string"}, "reason_code": nullable_string, "measure": nullable_string, "mode": nullable_string, "comment": nullable_string, "hearing_date": nullable_date, "decided_at": {"type": "string", "format": "date-time"}}},
                "DecisionInput": {"type": "object", "properties": {"kind": {"type": "string", "enum": ["dismissal", "alternative_measure", "prosecution", "judicial_investigation", "joined"]}, "reason_code": {"type": "string"}, "measure": {"type": "string"}, "mode": {"type": "string"}, "comment": {"type": "string"}, "hearing_date": {"type": "string", "format": "date"}}, "required": ["kind"]},
                "Referral": {"type": "object", "properties": {
                    "id": {"type": "string", "format": "uuid"}, "reference": nullable_string, "status": {"type": "string"}, "kind": {"type": "string"}, "urgency": {"type": "string"},
                    "title": {"type": "string"}, "facts": {"type": "string"}, "administration_reference": nullable_string, "facts_started_on": nullable_date, "facts_ended_on": nullable_date,
                    "place": {"type": ["object", "null"]}, "offence_codes": {"type": "array", "items": {"type": "integer"}}, "parties": {"type": "array", "items": reference("Party")},
                    "administration": {"type": "object"}, "parquet": {"type": ["object", "null"]}, "attachments": {"type": "array", "items": reference("Attachment")},
                    "created_at": {"type": "string", "format": "date-time"}, "submitted_at": nullable_instant, "acknowledged_at": nullable_instant, "registered_at": nullable_instant,
                    "parquet_number": nullable_string, "limitation_date": nullable_date, "decision": reference("Decision"), "deadline": {"type": ["object", "null"]}
                }, "required": ["id", "status", "kind", "urgency", "title", "facts", "offence_codes", "parties", "administration", "attachments", "created_at"]},
                "ReferralList": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object"}}, "next_cursor": nullable_string}, "required": ["items", "next_cursor"]},
                "SubmitResult": {"type": "object", "properties": {"referral": reference("Referral"), "receipt": {"type": ["object", "null"]}}, "required": ["referral", "receipt"]},
                "Message": {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}, "body": {"type": "string"}, "internal": {"type": "boolean"}, "at": {"type": "string", "format": "date-time"}}},
                "Event": {"type": "object", "properties": {"at": {"type": "string", "format": "date-time"}, "type": {"type": "string"}, "actor": {"type": "object"}, "summary": {"type": "string"}}, "required": ["at", "type", "actor", "summary"]},
                "Commune": {"type": "object", "properties": {"insee": {"type": "string"}, "name": {"type": "string"}, "departement": {"type": "string"}, "postal_codes": {"type": "array", "items": {"type": "string"}}, "parquet": {"type": ["object", "null"]}}, "required": ["insee", "name", "departement", "postal_codes"]},
                "Offence": {"type": "object", "properties": {"code": {"type": "integer"}, "nature": {"type": "string"}, "label": {"type": "string"}, "defined_by": {"type": "string"}, "punished_by": {"type": "string"}}, "required": ["code", "nature", "label"]},
                "ReceiptCheck": {"type": "object", "properties": {"genuine": {"type": "boolean"}, "signature": nullable_string, "public_key": {"type": "string"}, "reference": {"type": "string"}, "submitted_at": {"type": "string", "format": "date-time"}, "parquet": {"type": "string"}, "attachments": {"type": "array", "items": {"type": "object", "properties": {"size": {"type": "integer"}, "sha256": {"type": "string"}}}}}, "required": ["genuine", "reference", "submitted_at", "parquet", "attachments"]}
            }
        }
    })
}

/// A readable list of the API's operations, generated from the same document.
async fn docs_page() -> Html<String> {
    let document = openapi();
    let mut rows = String::new();
    if let Some(paths) = document["paths"].as_object() {
        for (path, methods) in paths {
            if let Some(methods) = methods.as_object() {
                for (method, operation) in methods {
                    let summary = operation["summary"].as_str().unwrap_or("");
                    rows.push_str(&format!(
                        "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
                        method.to_uppercase(),
                        escape(path),
                        escape(summary)
                    ));
                }
            }
        }
    }
    Html(format!(
        "<!doctype html><html lang=\"fr\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Documentation de l'API — Info Parquet</title><link rel=\"stylesheet\" href=\"/assets/dsfr/dsfr.min.css\"></head><body>\
         <main id=\"contenu\" class=\"fr-container fr-my-6w\"><h1>API Info Parquet</h1>\
         <p>Authentification par jeton : <code>Authorization: Bearer &lt;jeton&gt;</code> (<code>infoparquet token create --email …</code>). \
         Erreurs au format RFC 9457. Description complète : <a class=\"fr-link\" href=\"/api/openapi.json\">/api/openapi.json</a> (OpenAPI 3.1).</p>\
         <div class=\"fr-table\"><table><caption>Opérations</caption><thead><tr><th scope=\"col\">Méthode</th><th scope=\"col\">Chemin</th><th scope=\"col\">Description</th></tr></thead>\
         <tbody>{rows}</tbody></table></div></main></body></html>"
    ))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
