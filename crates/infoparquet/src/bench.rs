//! `infoparquet bench …`: load generators for `scripts/bench.sh` (not part of the tests).
//! They drive a running server over HTTP as real clients would: each submission creates a
//! draft, uploads its document and sends it, and counts only when the receipt comes back (the
//! server answers after its transaction and the document's fsync).

use anyhow::{bail, Context};
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn create_draft(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    index: usize,
) -> anyhow::Result<String> {
    let draft: serde_json::Value = client
        .post(format!("{url}/api/v1/referrals"))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "kind": "article_40",
            "urgency": "normal",
            "title": format!("Banc d'essai n° {index}"),
            "facts": "Saisine du banc d'essai : un procès-verbal joint.",
            "place": {"commune_insee": "41018"},
            "offence_codes": [7151],
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    draft["id"]
        .as_str()
        .map(str::to_string)
        .context("no id in the created draft")
}

async fn submit_one(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    index: usize,
    document: Bytes,
) -> anyhow::Result<()> {
    let id = create_draft(client, url, token, index).await?;
    client
        .post(format!(
            "{url}/api/v1/referrals/{id}/attachments?filename=pv-{index}.pdf&kind=evidence"
        ))
        .bearer_auth(token)
        .header("content-type", "application/pdf")
        .body(document)
        .send()
        .await?
        .error_for_status()?;
    let sent: serde_json::Value = client
        .post(format!("{url}/api/v1/referrals/{id}/submit"))
        .bearer_auth(token)
        .json(&serde_json::json!({}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    if sent["receipt"]["reference"].is_null() {
        bail!("no receipt for {id}");
    }
    Ok(())
}

/// `clients` concurrent clients send `total` referrals with one document of `size` bytes each.
pub async fn submissions(
    url: &str,
    token: &str,
    clients: usize,
    total: usize,
    size: usize,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    // A PDF-looking document, different in each byte position so that nothing compresses it.
    let mut document = b"%PDF-1.7\n".to_vec();
    document
        .extend((0..size.saturating_sub(9)).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let document = Bytes::from(document);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, token, document, next) = (
            client.clone(),
            url.to_string(),
            token.to_string(),
            document.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0usize;
            loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= total {
                    break;
                }
                let one = Instant::now();
                match submit_one(&client, &url, &token, index, document.clone()).await {
                    Ok(()) => latencies.push(one.elapsed()),
                    Err(error) => {
                        failures += 1;
                        eprintln!("submission {index} failed: {error}");
                    }
                }
            }
            (latencies, failures)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let (mine, failed) = task.await?;
        latencies.extend(mine);
        failures += failed;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "durable submissions ({clients} clients, one {} KiB document each): {} in {elapsed:.1} s = {:.0} per second; \
         one submission (3 requests) p50 {:.0} ms, p99 {:.0} ms; failures {failures}",
        size / 1024,
        latencies.len(),
        latencies.len() as f64 / elapsed,
        percentile(&latencies, 50.0).as_secs_f64() * 1000.0,
        percentile(&latencies, 99.0).as_secs_f64() * 1000.0,
    );
    Ok(())
}

/// One document of `size` bytes streamed to a new draft, generated on the fly (the client
/// holds 1 MiB at a time).
pub async fn upload(url: &str, token: &str, size: u64) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let id = create_draft(&client, url, token, 0).await?;
    let chunk = Bytes::from(
        (0..1usize << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<u8>>(),
    );
    let chunks = size.div_ceil(chunk.len() as u64);
    let last = size - (chunks.saturating_sub(1)) * chunk.len() as u64;
    let body = futures_util::stream::iter((0..chunks).map(move |index| {
        Ok::<Bytes, std::io::Error>(if index + 1 == chunks {
            chunk.slice(..last as usize)
        } else {
            chunk.clone()
        })
    }));
    let started = Instant::now();
    let stored: serde_json::Value = client
        .post(format!(
            "{url}/api/v1/referrals/{id}/attachments?filename=grand.bin&kind=evidence"
        ))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .header("content-length", size)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "streamed upload of {} MiB: {elapsed:.1} s = {:.0} MB/s (stored {} bytes, SHA-256 {})",
        size >> 20,
        size as f64 / elapsed / 1e6,
        stored["size"],
        stored["sha256"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// Requests per second `clients` concurrent clients get from `path` (a minimal handler gives
/// the machine's HTTP ceiling, the reference for the other figures).
pub async fn rate(url: &str, path: &str, clients: usize, seconds: u64) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, target) = (client.clone(), format!("{url}{path}"));
        tasks.push(tokio::spawn(async move {
            let mut answered = 0u64;
            while Instant::now() < until {
                if client
                    .get(&target)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    answered += 1;
                }
            }
            answered
        }));
    }
    let mut answered = 0;
    for task in tasks {
        answered += task.await?;
    }
    println!(
        "{path} with {clients} clients: {answered} answers in {seconds} s = {} per second",
        answered / seconds.max(1)
    );
    Ok(())
}
