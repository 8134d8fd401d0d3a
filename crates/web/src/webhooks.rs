//! Webhook deliveries, following the Standard Webhooks scheme (standardwebhooks.com): each
//! request carries `webhook-id`, `webhook-timestamp` and `webhook-signature` (`v1,` then the
//! base64 HMAC-SHA256 of `id.timestamp.body` under the endpoint's secret). Failed deliveries
//! are retried on a fixed schedule spanning 24 hours, then given up (a replay stays possible).

use crate::AppState;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use store::WebhookMessage;

/// The wait after each failed attempt; about 23 hours in all, after which the delivery fails.
const RETRY_SCHEDULE_MINUTES: [i64; 8] = [1, 5, 30, 60, 120, 300, 480, 390];
const LEASE_SECONDS: i64 = 120;
const TIMEOUT_SECONDS: u64 = 10;

/// A new endpoint secret, in the Standard Webhooks format.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// The `webhook-signature` header value for a message.
pub fn sign(secret: &str, message_id: &str, timestamp: i64, body: &str) -> Result<String, String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|e| format!("unreadable secret: {e}"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(format!("{message_id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    Ok(format!("v1,{signature}"))
}

/// When to try again after `attempts` failures, or `None` to give up.
pub fn next_attempt(attempts: i64, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let index = usize::try_from(attempts.max(1) - 1).ok()?;
    RETRY_SCHEDULE_MINUTES
        .get(index)
        .map(|minutes| now + Duration::minutes(*minutes))
}

/// Whether a URL may receive webhooks: HTTPS, or plain HTTP where configuration allows it (tests
/// and closed networks).
pub fn acceptable_url(url: &str, allow_http: bool) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    parsed.host_str().is_some()
        && parsed.username().is_empty()
        && parsed.password().is_none()
        && (parsed.scheme() == "https" || (allow_http && parsed.scheme() == "http"))
}

pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(TIMEOUT_SECONDS))
        // A receiver may not bounce the platform elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("InfoParquet-Webhooks/1")
        .build()
}

async fn deliver(
    state: &AppState,
    client: &reqwest::Client,
    message: &WebhookMessage,
) -> Result<(), String> {
    let hook = state
        .store
        .webhook(message.webhook_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("webhook supprimé")?;
    if hook.disabled_at.is_some() {
        return Err("webhook désactivé".into());
    }
    let timestamp = state.now().timestamp();
    let signature = sign(&hook.secret, &message.message_id, timestamp, &message.body)?;
    let response = client
        .post(&hook.url)
        .header("content-type", "application/json")
        .header("webhook-id", &message.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(message.body.clone())
        .send()
        .await
        .map_err(|e| format!("injoignable : {e}"))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("réponse HTTP {}", status.as_u16()))
    }
}

/// Sends the webhook deliveries that are due; returns how many succeeded.
pub async fn deliver_due_webhooks(
    state: &AppState,
    client: &reqwest::Client,
) -> Result<usize, store::StoreError> {
    let mut delivered = 0;
    loop {
        let jobs = state
            .store
            .claim_jobs("webhook", state.now(), Duration::seconds(LEASE_SECONDS), 20)
            .await?;
        if jobs.is_empty() {
            return Ok(delivered);
        }
        for job in jobs {
            let outcome = match serde_json::from_str::<WebhookMessage>(&job.payload) {
                Ok(message) => deliver(state, client, &message).await,
                Err(e) => Err(format!("unreadable payload: {e}")),
            };
            let now = state.now();
            match outcome {
                Ok(()) => {
                    state.store.complete_job(job.id, now).await?;
                    delivered += 1;
                }
                Err(error) => {
                    tracing::warn!(job = %job.id, attempts = job.attempts, %error, "webhook not delivered");
                    // Each endpoint fails on its own: the others are still tried this round.
                    let retry_at = next_attempt(job.attempts, now);
                    state
                        .store
                        .retry_job(job.id, retry_at.unwrap_or(now), &error, retry_at.is_none())
                        .await?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let signature = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        )
        .expect("sign");
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn retries_span_about_a_day_then_stop() {
        let start = Utc::now();
        let mut at = start;
        let mut attempts = 1;
        while let Some(next) = next_attempt(attempts, at) {
            at = next;
            attempts += 1;
        }
        let span = at - start;
        assert!(
            span > Duration::hours(22) && span <= Duration::hours(24),
            "{span}"
        );
        assert_eq!(attempts, 9);
    }

    #[test]
    fn only_https_unless_allowed() {
        assert!(acceptable_url("https://sirh.example.fr/hooks", false));
        assert!(!acceptable_url("http://sirh.example.fr/hooks", false));
        assert!(acceptable_url("http://127.0.0.1:8080/", true));
        assert!(!acceptable_url("https://user:pw@example.fr/", false));
        assert!(!acceptable_url("ftp://example.fr/", true));
        assert!(!acceptable_url("pas une adresse", true));
    }
}
