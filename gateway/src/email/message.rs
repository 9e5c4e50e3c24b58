//! The MIME message of an email: `From`, `To`, `Reply-To`, `Subject` (RFC 2047 encoded when
//! not ASCII), a `Message-ID` naming the Switchyard message, and a text/plain body or a
//! multipart/alternative of text and HTML (quoted-printable or base64 as lettre chooses).

use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::Message;

use crate::domain::EmailJob;

/// A built email and the Message-ID it carries.
#[derive(Debug)]
pub(super) struct Built {
    /// The message.
    pub(super) email: Message,
    /// Its Message-ID, without the angle brackets: `<message id>.<tenant hash>@switchyard`.
    pub(super) message_id: String,
}

/// Builds `job`'s email, sent from `job.from` or else `default_from`.
pub(super) fn build(job: &EmailJob, default_from: Option<&str>) -> Result<Built, String> {
    let from = job
        .from
        .as_deref()
        .or(default_from)
        .ok_or("no sender: give \"from\" or configure the relay's from")?;
    let from: Mailbox = from.parse().map_err(|e| format!("from {from:?}: {e}"))?;
    let to: Mailbox = job
        .to
        .parse()
        .map_err(|e| format!("to {:?}: {e}", job.to))?;
    let message_id = format!("{}@switchyard", job.id);
    let mut builder = Message::builder()
        .from(from)
        .to(to)
        .subject(job.spec.subject.clone())
        .message_id(Some(format!("<{message_id}>")));
    if let Some(reply_to) = &job.spec.reply_to {
        let reply_to: Mailbox = reply_to
            .parse()
            .map_err(|e| format!("reply_to {reply_to:?}: {e}"))?;
        builder = builder.reply_to(reply_to);
    }
    let email = match &job.spec.html {
        None => builder.singlepart(SinglePart::plain(job.body.clone())),
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            job.body.clone(),
            html.clone(),
        )),
    }
    .map_err(|e| e.to_string())?;
    Ok(Built { email, message_id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EmailSpec, MessageId};
    use switchyard_routing::Priority;

    fn job(html: Option<&str>) -> EmailJob {
        EmailJob {
            id: MessageId(42),
            tenant: "acme".into(),
            to: "ana@example.org".into(),
            from: None,
            body: "Grüße — your code is 1234".into(),
            spec: EmailSpec {
                subject: "Ihr Code: 1234 ✓".into(),
                html: html.map(str::to_owned),
                reply_to: Some("help@acme.example".into()),
            },
            priority: Priority::Normal,
            expires_at: None,
            carrier: "relay".into(),
        }
    }

    #[test]
    fn headers_and_parts() {
        let built = build(&job(Some("<p>Grüße</p>")), Some("noreply@acme.example")).unwrap();
        let text = String::from_utf8(built.email.formatted()).unwrap();
        assert!(text.contains("From: noreply@acme.example\r\n"), "{text}");
        assert!(text.contains("To: ana@example.org\r\n"), "{text}");
        assert!(text.contains("Reply-To: help@acme.example\r\n"), "{text}");
        assert!(
            text.contains("Subject: Ihr Code: 1234 =?utf-8?b?"),
            "non-ASCII words are encoded (RFC 2047): {text}"
        );
        assert!(
            text.contains(&format!("Message-ID: <{}>", built.message_id)),
            "{text}"
        );
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(text.contains("text/html"), "{text}");
    }

    #[test]
    fn a_missing_sender_is_an_error_not_a_panic() {
        assert!(build(&job(None), None).unwrap_err().contains("no sender"));
        let mut bad = job(None);
        bad.to = "not an address".into();
        assert!(build(&bad, Some("a@b.co")).unwrap_err().starts_with("to "));
    }
}
