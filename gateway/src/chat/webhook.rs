//! The webhook channel: a message is one signed `POST` of a JSON document to the URL the
//! tenant gave as `to` (the endpoint of the system that is the recipient), made by the
//! gateway's own HTTP client (`[carriers.webhook]`) under the `[egress]` policy.
//!
//! ```text
//! POST <to>
//! Content-Type: application/json
//! Idempotency-Key: msg_…                    the message id: the same on every retry
//! X-Switchyard-Message-Id: msg_…
//! X-Switchyard-Signature: t=…,v1=…          the tenant's webhook_secrets, as event webhooks
//!
//! {"id": "msg_…", "tenant": "acme", "from": "billing" | null, "body": "…",
//!  "tags": ["…"], "metadata": {…} | null, "created_at": "2026-…Z"}
//! ```
//!
//! - **Signed as event webhooks are**: [`crate::events::signing`], with every secret of the
//!   tenant (two during a rotation). A tenant without one is refused at acceptance; one whose
//!   secrets were removed since has its messages rejected, never sent unsigned.
//! - **Where it may go**: the client connects only where `[egress]` allows
//!   ([`crate::egress`]): a refused address literal is refused at acceptance, a name that
//!   resolves only to refused addresses rejects the message (the tenant sees the generic
//!   reason, the operator's log the address).
//! - **What the answer means** ([`judge`]): 2xx is `delivered` (the recipient system has the
//!   message); 408, 429, 5xx, timeouts and connection failures are tried again with the
//!   engine's back-off; any other status (3xx: redirects are not followed, 4xx) rejects the
//!   message with the status in its error.
//! - **Health**: the endpoint's answers are about the recipient, not about the carrier, so
//!   they never feed the carrier's health or breaker (see [`super::ChatCarriers`]): one
//!   tenant's failing endpoint cannot close the channel for the others.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use switchyard_ops::config::{Config, EgressPolicy, WebhookSender};
use switchyard_routing::FailureClass;
use tokio::sync::Semaphore;

use crate::domain::{now_ms, rfc3339, ChatJob, SharedDirectory};
use crate::events::signing;
use crate::events::webhook::{post, HttpClient, Posted, REFUSED, UNSIGNED};
use crate::handoff::Verdict;

/// The gateway's client for one `[carriers.webhook]` carrier.
pub(crate) struct Poster {
    /// Timeout, connections, body limit.
    config: WebhookSender,
    /// Connects only where `[egress]` allows; the system's roots plus `tls_ca`.
    client: HttpClient,
    /// One permit per POST in flight (`max_connections`).
    permits: Semaphore,
    /// Tenants' signing secrets (swapped on reload).
    directory: SharedDirectory,
}

impl std::fmt::Debug for Poster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poster")
            .field("config", &self.config)
            .field("in_flight_free", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl Poster {
    /// A client for `config`, connecting only where `egress` allows.
    pub(crate) fn new(
        config: WebhookSender,
        egress: Arc<EgressPolicy>,
        base_dir: &std::path::Path,
        directory: SharedDirectory,
    ) -> anyhow::Result<Poster> {
        let ca = config
            .tls_ca
            .as_ref()
            .map(|ca| Config::resolve(base_dir, ca));
        let client = crate::egress::client(
            egress,
            config.timeout,
            ca.as_deref(),
            config.max_connections as usize,
        )?;
        Ok(Poster {
            permits: Semaphore::new(config.max_connections as usize),
            config,
            client,
            directory,
        })
    }

    /// Posts `job` to its endpoint once.
    pub(crate) async fn send(&self, job: &ChatJob) -> Verdict {
        let id = job.id.to_string();
        let body = document(job);
        if body.len() > self.config.max_body_bytes {
            return Verdict::Rejected(format!(
                "the message is {} bytes of JSON; this carrier posts at most {}",
                body.len(),
                self.config.max_body_bytes
            ));
        }
        let t = now_ms() / 1000;
        let signature = {
            let d = self.directory.load();
            d.tenants
                .get(&job.tenant)
                .filter(|e| !e.webhook_secrets.is_empty())
                .map(|e| signing::header_value(&e.webhook_secrets, t, &body))
        };
        let Some(signature) = signature else {
            tracing::warn!(%id, tenant = %job.tenant, "webhook message not sent: no webhook_secrets");
            return Verdict::Rejected(UNSIGNED.into());
        };
        let request = hyper::Request::post(job.to.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "Switchyard-Webhooks/1")
            .header("Idempotency-Key", &id)
            .header("X-Switchyard-Message-Id", &id)
            .header(signing::HEADER, signature)
            .body(Full::new(Bytes::from(body)));
        let Ok(request) = request else {
            return Verdict::Rejected("the URL cannot be requested".into());
        };
        let Ok(_permit) = self.permits.acquire().await else {
            return Verdict::Retry("carrier closed".into(), FailureClass::TransportDown);
        };
        let timeout = self.config.timeout;
        match post(&self.client, request, timeout).await {
            Posted::Answered(status, wait) => judge(status, id).hinted(wait),
            Posted::NoAnswer => Verdict::Retry(
                format!("no answer within {timeout:?}"),
                FailureClass::Timeout,
            ),
            Posted::Refused(refused) => {
                tracing::warn!(%id, tenant = %job.tenant, "webhook message not sent: {refused}");
                Verdict::Rejected(REFUSED.into())
            }
            Posted::Failed(msg) => {
                Verdict::Retry(format!("connection: {msg}"), FailureClass::TransportDown)
            }
        }
    }
}

/// What the endpoint's status means for the message `id`: 2xx delivered (the carrier id is
/// the message id); 408, 429 and 5xx worth another attempt later; anything else refuses it.
pub(crate) fn judge(status: u16, id: String) -> Verdict {
    let what = match hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("HTTP {status} {reason}"),
        None => format!("HTTP {status}"),
    };
    match status {
        200..=299 => Verdict::Delivered(id),
        408 => Verdict::Retry(what, FailureClass::Timeout),
        429 => Verdict::Retry(what, FailureClass::Throttled),
        500..=599 => Verdict::Retry(what, FailureClass::TransportDown),
        300..=399 => Verdict::Rejected(format!("{what} (redirects are not followed)")),
        _ => Verdict::Rejected(what),
    }
}

/// The JSON document posted for `job`.
pub(crate) fn document(job: &ChatJob) -> Vec<u8> {
    let metadata = job
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
        .unwrap_or(serde_json::Value::Null);
    let doc = serde_json::json!({
        "id": job.id.to_string(),
        "tenant": job.tenant,
        "from": Some(&job.from).filter(|f| !f.is_empty()),
        "body": job.body,
        "tags": job.tags,
        "metadata": metadata,
        "created_at": rfc3339(job.created_at),
    });
    // A `Value` always serializes.
    serde_json::to_vec(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use arc_swap::ArcSwap;
    use switchyard_ops::config::egress::Cidr;
    use switchyard_ops::config::TenantEvents;
    use switchyard_routing::Price;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::domain::{ChatChannel, ChatSpec, ChatTo, Directory, MessageId};

    const SECRET: &str = "whsec_channel_test_0001";
    /// How long a test waits for the endpoint.
    const TEST_TIMEOUT: Duration = Duration::from_secs(5);

    fn job(url: &str) -> ChatJob {
        ChatJob {
            id: MessageId(0x0123_4567_89ab),
            tenant: "acme".into(),
            to: ChatTo::Url(url.into()),
            body: "Order 42 shipped".into(),
            from: "shop".into(),
            tags: vec!["orders".into()],
            metadata: Some(r#"{"order":42}"#.into()),
            created_at: 1_700_000_000_000,
            spec: ChatSpec {
                channel: ChatChannel::Webhook,
                template: None,
                tag: None,
            },
            priority: switchyard_routing::Priority::Normal,
            expires_at: None,
            carrier: "Hooks".into(),
            withdrawable: false,
        }
    }

    fn directory(secrets: &[&str]) -> SharedDirectory {
        let mut d = Directory::default();
        d.tenants.insert(
            "acme".into(),
            TenantEvents {
                webhook_secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
                ..TenantEvents::default()
            },
        );
        Arc::new(ArcSwap::from_pointee(d))
    }

    fn poster(allow: &[&str], secrets: &[&str], max_body_bytes: usize) -> Poster {
        let policy = Arc::new(EgressPolicy {
            allow_nets: allow.iter().map(|a| Cidr::parse(a).unwrap()).collect(),
            allow_hosts: Vec::new(),
        });
        let config = WebhookSender {
            tls_ca: None,
            timeout: TEST_TIMEOUT,
            max_connections: 4,
            max_body_bytes,
            price: Price::ZERO,
            currency: None,
        };
        Poster::new(
            config,
            policy,
            std::path::Path::new("."),
            directory(secrets),
        )
        .unwrap()
    }

    /// One HTTP/1.1 exchange on 127.0.0.1: answers `status` and hands back the request.
    async fn endpoint(status: u16) -> (String, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
            s.write_all(answer.as_bytes()).await.unwrap();
            seen
        });
        (url, task)
    }

    #[test]
    fn statuses_are_judged_for_the_recipient() {
        let id = || "msg_1".to_owned();
        assert_eq!(judge(200, id()), Verdict::Delivered("msg_1".into()));
        assert_eq!(judge(204, id()), Verdict::Delivered("msg_1".into()));
        for (status, class) in [
            (408, FailureClass::Timeout),
            (429, FailureClass::Throttled),
            (500, FailureClass::TransportDown),
            (503, FailureClass::TransportDown),
        ] {
            match judge(status, id()) {
                Verdict::Retry(what, c) => {
                    assert_eq!(c, class, "{status}");
                    assert!(what.starts_with(&format!("HTTP {status}")), "{what}");
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        assert_eq!(
            judge(404, id()),
            Verdict::Rejected("HTTP 404 Not Found".into())
        );
        assert_eq!(judge(410, id()), Verdict::Rejected("HTTP 410 Gone".into()));
        assert!(matches!(judge(301, id()), Verdict::Rejected(w) if w.contains("redirects")));
        assert!(matches!(judge(400, id()), Verdict::Rejected(w) if w.starts_with("HTTP 400")));
    }

    #[test]
    fn the_document_carries_what_the_api_took() {
        let doc: serde_json::Value =
            serde_json::from_slice(&document(&job("https://example.com/in"))).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({
                "id": MessageId(0x0123_4567_89ab).to_string(),
                "tenant": "acme",
                "from": "shop",
                "body": "Order 42 shipped",
                "tags": ["orders"],
                "metadata": {"order": 42},
                "created_at": "2023-11-14T22:13:20Z",
            })
        );
        let mut bare = job("https://example.com/in");
        bare.from.clear();
        bare.metadata = None;
        let doc: serde_json::Value = serde_json::from_slice(&document(&bare)).unwrap();
        assert_eq!(doc["from"], serde_json::Value::Null);
        assert_eq!(doc["metadata"], serde_json::Value::Null);
    }

    #[tokio::test]
    async fn a_2xx_delivers_a_post_signed_as_event_webhooks_are() {
        let (url, seen) = endpoint(200).await;
        let p = poster(&["127.0.0.1/32"], &[SECRET, "whsec_next_secret_0002"], 4096);
        let j = job(&url);
        assert_eq!(p.send(&j).await, Verdict::Delivered(j.id.to_string()));
        let request = String::from_utf8(seen.await.unwrap()).unwrap();
        let (head, body) = request.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /hook HTTP/1.1"), "{head}");
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
        };
        assert_eq!(header("idempotency-key"), Some(j.id.to_string()));
        assert_eq!(header("x-switchyard-message-id"), Some(j.id.to_string()));
        assert_eq!(header("content-type").as_deref(), Some("application/json"));
        let signature = header("x-switchyard-signature").unwrap();
        assert_eq!(signature.matches("v1=").count(), 2);
        let now = now_ms() / 1000;
        assert!(signing::verify(
            &signature,
            SECRET.as_bytes(),
            body.as_bytes(),
            now,
            300
        ));
        assert!(!signing::verify(
            &signature,
            b"some other secret",
            body.as_bytes(),
            now,
            300
        ));
        assert_eq!(body.as_bytes(), document(&j).as_slice());
    }

    #[tokio::test]
    async fn a_4xx_rejects_and_a_5xx_is_tried_again() {
        let p = poster(&["127.0.0.1/32"], &[SECRET], 4096);
        let (url, _) = endpoint(404).await;
        assert_eq!(
            p.send(&job(&url)).await,
            Verdict::Rejected("HTTP 404 Not Found".into())
        );
        let (url, _) = endpoint(503).await;
        assert!(matches!(
            p.send(&job(&url)).await,
            Verdict::Retry(w, FailureClass::TransportDown) if w.starts_with("HTTP 503")
        ));
        // Nobody listens: a connection failure, tried again later.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/hook", l.local_addr().unwrap())
        };
        assert!(matches!(
            p.send(&job(&closed)).await,
            Verdict::Retry(_, FailureClass::TransportDown)
        ));
    }

    #[tokio::test]
    async fn refused_destinations_missing_secrets_and_large_bodies_are_not_sent() {
        let (url, seen) = endpoint(200).await;
        // `localhost` resolves to loopback, which the default policy refuses.
        let port = url.rsplit(':').next().unwrap();
        let by_name = format!("http://localhost:{port}");
        let strict = poster(&[], &[SECRET], 4096);
        assert_eq!(
            strict.send(&job(&by_name)).await,
            Verdict::Rejected(REFUSED.into())
        );
        let unsigned = poster(&["127.0.0.1/32"], &[], 4096);
        assert_eq!(
            unsigned.send(&job(&url)).await,
            Verdict::Rejected(UNSIGNED.into())
        );
        let small = poster(&["127.0.0.1/32"], &[SECRET], 100);
        assert!(
            matches!(small.send(&job(&url)).await, Verdict::Rejected(w) if w.contains("at most 100"))
        );
        seen.abort();
    }
}
