//! Outgoing email. A [`Mailer`] handle queues messages to one sender task that talks SMTP
//! (lettre) and retries with backoff, so a slow or briefly unreachable mail server never
//! holds up an API request.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{SmtpConfig, SmtpTls};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("bad address {0}")]
    Address(String),
    #[error("cannot build message: {0}")]
    Build(String),
    #[error("SMTP setup: {0}")]
    Transport(String),
}

/// One email to send.
#[derive(Debug, Clone)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Queues email for the sender task.
#[derive(Clone)]
pub struct Mailer {
    queue: mpsc::Sender<Email>,
}

impl Mailer {
    /// Queues a message; it is sent in the background. Never waits: when the queue is
    /// full (the mail server is down or slow and mail piles up) the message is dropped
    /// and logged, and the request that wanted it is answered as usual — the user can ask
    /// again. Returns whether it was queued.
    pub fn send(&self, email: Email) -> bool {
        match self.queue.try_send(email) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(e)) => {
                tracing::warn!(to = %e.to, subject = %e.subject, "mail queue full; message dropped");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("mail sender has stopped; message dropped");
                false
            }
        }
    }
}

/// The sender task's state.
pub struct MailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    attempts: u32,
    queue: mpsc::Receiver<Email>,
}

/// Builds the handle and its sender task.
pub fn mailer(config: &SmtpConfig) -> Result<(Mailer, MailSender), MailError> {
    let builder = match config.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
            .map_err(|e| MailError::Transport(e.to_string()))?,
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
            .map_err(|e| MailError::Transport(e.to_string()))?,
    };
    let mut builder = builder
        .port(config.port)
        .timeout(Some(Duration::from_secs(20)));
    if let (Some(user), Some(pass)) = (&config.username, &config.password) {
        builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
    }
    let from: Mailbox = config
        .from
        .parse()
        .map_err(|_| MailError::Address(config.from.clone()))?;
    let (tx, rx) = mpsc::channel(config.queue.max(1));
    Ok((
        Mailer { queue: tx },
        MailSender {
            transport: builder.build(),
            from,
            attempts: config.attempts.max(1),
            queue: rx,
        },
    ))
}

impl MailSender {
    fn build(&self, email: &Email) -> Result<Message, MailError> {
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|_| MailError::Address(email.to.clone()))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(email.body.clone())
            .map_err(|e| MailError::Build(e.to_string()))
    }

    /// Sends queued mail until shutdown, then drains what is queued (one attempt each).
    pub async fn run(mut self, cancel: CancellationToken) -> Result<(), MailError> {
        loop {
            let email = tokio::select! {
                e = self.queue.recv() => match e { Some(e) => e, None => return Ok(()) },
                _ = cancel.cancelled() => break,
            };
            self.deliver(&email, self.attempts, &cancel).await;
        }
        while let Ok(email) = self.queue.try_recv() {
            self.deliver(&email, 1, &cancel).await;
        }
        Ok(())
    }

    async fn deliver(&self, email: &Email, attempts: u32, cancel: &CancellationToken) {
        let span = tracing::info_span!("mail", to = %email.to, subject = %email.subject);
        self.deliver_in_span(email, attempts, cancel)
            .instrument(span)
            .await
    }

    async fn deliver_in_span(&self, email: &Email, attempts: u32, cancel: &CancellationToken) {
        let message = match self.build(email) {
            Ok(m) => m,
            Err(err) => {
                tracing::error!(%err, "cannot build email");
                return;
            }
        };
        let mut delay = Duration::from_millis(500);
        for attempt in 1..=attempts {
            match self.transport.send(message.clone()).await {
                Ok(_) => {
                    tracing::info!("email sent");
                    return;
                }
                Err(err) => {
                    tracing::warn!(%err, attempt, "sending email failed");
                    if attempt < attempts && !cancel.is_cancelled() {
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = cancel.cancelled() => {}
                        }
                        delay = (delay * 2).min(Duration::from_secs(30));
                    }
                }
            }
        }
        tracing::error!("giving up on email after {attempts} attempts");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A full queue (the mail server is down and nothing drains it) drops the message at
    /// once instead of holding up the request that wanted it.
    #[tokio::test]
    async fn a_full_queue_never_waits() {
        let config = SmtpConfig {
            queue: 2,
            ..SmtpConfig::default()
        };
        let (mailer, _sender) = mailer(&config).unwrap();
        let email = || Email {
            to: "a@example.org".into(),
            subject: "s".into(),
            body: "b".into(),
        };
        assert!(mailer.send(email()));
        assert!(mailer.send(email()));
        assert!(
            !mailer.send(email()),
            "the third does not fit and is dropped"
        );
    }
}
