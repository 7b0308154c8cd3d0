//! Alert mail over SMTP (`[[alerts.email]]`): STARTTLS or implicit TLS on rustls,
//! authentication (PLAIN or LOGIN), the duty desk plus each department's recipients.
//!
//! The mail is the same Markdown text the robots get, as UTF-8 plain text (readable as is),
//! in `[reports] language`; the subject is the alert's title, which lettre encodes as an
//! RFC 2047 encoded word when it is not ASCII. The password is read once, when the channel
//! is made, and is never logged (the channel's `Debug` shows its name only).

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use poolguard_config::email::{EmailConfig, SmtpTls, split_server};

use super::AlertEvent;
use super::channel::{Tried, read_secret};
use super::message::Message as Rendered;

/// A ready SMTP client and who gets what.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    cfg: EmailConfig,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        f.debug_struct("Mailer")
            .field("server", &self.cfg.server)
            .finish()
    }
}

/// This host's name for EHLO (RFC 5321 asks for the primary host name).
fn hello_name() -> ClientId {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    if name.is_empty() {
        ClientId::Domain("poolguard".to_string())
    } else {
        ClientId::Domain(name)
    }
}

impl Mailer {
    /// The client for `cfg`; `Err` says why it cannot send (the deliveries log it).
    pub fn new(cfg: &EmailConfig, timeout: Duration) -> Result<Self, String> {
        let (host, port) =
            split_server(&cfg.server).ok_or_else(|| format!("server `{}`", cfg.server))?;
        let tls_params = || -> Result<TlsParameters, String> {
            let mut b = TlsParameters::builder(host.clone());
            if let Some(path) = &cfg.ca_file {
                let pem =
                    std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls().map_err(|e| format!("TLS: {e}"))
        };
        let tls = match cfg.tls {
            SmtpTls::Starttls => Tls::Required(tls_params()?),
            SmtpTls::Implicit => Tls::Wrapper(tls_params()?),
            SmtpTls::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .tls(tls)
            .hello_name(hello_name())
            .timeout(Some(timeout));
        if let Some(user) = &cfg.username {
            let pass = read_secret(cfg.password_file.as_deref(), cfg.password_env.as_deref())
                .map_err(|e| e.replace("secret_", "password_"))?
                .unwrap_or_default();
            builder = builder
                .credentials(Credentials::new(user.clone(), pass))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| format!("from `{}`: {e}", cfg.from))?;
        Ok(Self {
            transport: builder.build(),
            from,
            cfg: cfg.clone(),
        })
    }

    /// Who gets `event`: `to`, the recipients of its department, and the ledger contact
    /// when asked for; each once.
    pub fn recipients(&self, event: &AlertEvent) -> Vec<String> {
        recipients(&self.cfg, event)
    }

    /// Who gets every mail of this channel (`to`, the duty desk).
    pub fn duty_desk(&self) -> &[String] {
        &self.cfg.to
    }

    /// The mail of `rendered` to `to`.
    pub fn message(&self, rendered: &Rendered, to: &[String]) -> Result<Message, String> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(rendered.title.clone())
            .header(ContentType::TEXT_PLAIN);
        for addr in to {
            let mb: Mailbox = addr
                .parse()
                .map_err(|e| format!("recipient `{addr}`: {e}"))?;
            b = b.to(mb);
        }
        b.body(rendered.text.clone()).map_err(|e| e.to_string())
    }

    /// Sends one mail: the SMTP reply code, and the error if it was not taken. A permanent
    /// (5xx) reply, a wrong password say, is not retried; a transient (4xx) one or a
    /// connection failure is.
    pub async fn send(&self, mail: Message) -> Tried {
        match self.transport.send(mail).await {
            Ok(resp) => Tried {
                status: Some(u16::from(resp.code())),
                error: None,
                retry: true,
            },
            Err(e) => Tried {
                status: e.status().map(u16::from),
                error: Some(e.to_string()),
                retry: !e.is_permanent(),
            },
        }
    }
}

/// See [`Mailer::recipients`].
pub fn recipients(cfg: &EmailConfig, event: &AlertEvent) -> Vec<String> {
    let d = &event.detail;
    let mut out: Vec<String> = cfg.to.clone();
    let dept = d["identity"]["department"]
        .as_str()
        .or_else(|| d["department"].as_str());
    if let Some(list) = dept.and_then(|dep| cfg.departments.get(dep)) {
        out.extend(list.iter().cloned());
    }
    if cfg.ledger_contact
        && let Some(c) = d["identity"]["contact"].as_str()
        && c.contains('@')
        && !c.contains([',', ';', ' '])
    {
        out.push(c.to_string());
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|a| seen.insert(a.to_ascii_lowercase()));
    out
}

/// A shared mailer, or why there is none.
pub type SharedMailer = Arc<Result<Mailer, String>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_follow_department_and_contact() {
        let cfg: EmailConfig = serde_json::from_value(serde_json::json!({
            "server": "127.0.0.1:25", "from": "pg@campus.edu", "to": ["soc@campus.edu"],
            "departments": {"物理系": ["phys@campus.edu", "SOC@campus.edu"]},
            "ledger_contact": true,
        }))
        .expect("config");
        let mut ev = AlertEvent::incident("incident.opened", 1, "10.0.0.1", 0);
        ev.detail =
            serde_json::json!({"identity": {"department": "物理系", "contact": "li@campus.edu"}});
        assert_eq!(
            recipients(&cfg, &ev),
            ["soc@campus.edu", "phys@campus.edu", "li@campus.edu"]
        );
        ev.detail = serde_json::json!({"department": "化学系"});
        assert_eq!(recipients(&cfg, &ev), ["soc@campus.edu"]);
    }
}
