//! One order, from new-order to the certificate chain: answer one challenge per domain (the
//! first of `challenges` the CA offers), tell the CA, wait for validation, finalize with a
//! fresh key and CSR, and download the chain. The answers are withdrawn however it ends.

use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, Problem,
    RetryPolicy,
};

use super::challenge::{alpn_certificate, key_and_csr, KeyError};
use super::{AcmeSettings, AcmeState, Challenge};

/// How long the CA may take to validate, and then to issue, before the attempt counts as
/// failed (and is retried with back-off).
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("{step}: {}", error_chain(source))]
    Ca {
        step: &'static str,
        source: instant_acme::Error,
    },
    #[error("{domain}: the CA offers none of the configured challenges ({configured}); it offers {offered}")]
    NoChallenge {
        domain: String,
        configured: String,
        offered: String,
    },
    #[error(
        "{domain}: the CA refused the {challenge} challenge: {}",
        problem_text(problem)
    )]
    Refused {
        domain: String,
        challenge: &'static str,
        problem: Problem,
    },
    #[error("the CA marked the order invalid: {0}")]
    Invalid(String),
    #[error("the CA did not validate the challenges within {}s", VALIDATION_TIMEOUT.as_secs())]
    Timeout,
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl OrderError {
    /// A nonce the CA rejected (RFC 8555 §6.5) past instant-acme's own retries: nothing is
    /// wrong with the order, it can be tried again at once.
    pub fn is_bad_nonce(&self) -> bool {
        matches!(
            self,
            OrderError::Ca { source: instant_acme::Error::Api(problem), .. }
                if problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:badNonce")
        )
    }
}

/// "detail (type)", as the CA gave them, with its subproblems.
pub fn problem_text(problem: &Problem) -> String {
    let mut text = problem.detail.clone().unwrap_or_else(|| "no detail".into());
    if let Some(kind) = &problem.r#type {
        text.push_str(&format!(" ({kind})"));
    }
    for sub in &problem.subproblems {
        text.push_str(&format!("; {}", sub.detail.as_deref().unwrap_or("")));
        if let Some(kind) = &sub.r#type {
            text.push_str(&format!(" ({kind})"));
        }
    }
    text
}

/// An error with its sources ("error sending request: …: Connection refused"), and a CA
/// problem as [`problem_text`].
pub fn error_chain(error: &instant_acme::Error) -> String {
    if let instant_acme::Error::Api(problem) = error {
        return problem_text(problem);
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

fn ca(step: &'static str) -> impl FnOnce(instant_acme::Error) -> OrderError {
    move |source| OrderError::Ca { step, source }
}

/// A certificate just issued: the chain as the CA sent it and its new key, both PEM.
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

/// The challenge answers put up for one order; withdrawn on drop, so also when the order
/// fails or the task is aborted at an await.
struct Answers<'a> {
    state: &'a AcmeState,
    tokens: Vec<String>,
    domains: Vec<String>,
}

impl Drop for Answers<'_> {
    fn drop(&mut self) {
        for token in &self.tokens {
            self.state.remove_http_answer(token);
        }
        for domain in &self.domains {
            self.state.remove_alpn_answer(domain);
        }
    }
}

fn challenge_type(challenge: Challenge) -> ChallengeType {
    match challenge {
        Challenge::Http01 => ChallengeType::Http01,
        Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
    }
}

fn type_name(kind: &ChallengeType) -> String {
    match kind {
        ChallengeType::Http01 => "http-01".into(),
        ChallengeType::Dns01 => "dns-01".into(),
        ChallengeType::TlsAlpn01 => "tls-alpn-01".into(),
        ChallengeType::DeviceAttest01 => "device-attest-01".into(),
        ChallengeType::Unknown(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

/// Runs one order for `settings.domains`, answering the first of `preference` the CA offers
/// for each domain, and returns the issued chain and key.
pub async fn order_certificate(
    account: &Account,
    settings: &AcmeSettings,
    preference: &[Challenge],
    state: &AcmeState,
) -> Result<Issued, OrderError> {
    let identifiers: Vec<Identifier> = settings
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(ca("new order"))?;

    let mut answers = Answers {
        state,
        tokens: Vec::new(),
        domains: Vec::new(),
    };
    // Which challenge each domain got, for the message if the CA refuses it.
    let mut chosen: Vec<(String, Challenge)> = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.map_err(ca("fetch authorization"))?;
        if authorization.status == AuthorizationStatus::Valid {
            continue;
        }
        let domain = authorization.identifier().to_string();
        let offered: Vec<ChallengeType> = authorization
            .challenges
            .iter()
            .map(|c| c.r#type.clone())
            .collect();
        let Some(challenge) = preference
            .iter()
            .copied()
            .find(|c| offered.contains(&challenge_type(*c)))
        else {
            return Err(OrderError::NoChallenge {
                domain,
                configured: names(preference.iter().map(|c| c.name().to_string())),
                offered: names(offered.iter().map(type_name)),
            });
        };
        let mut handle = authorization
            .challenge(challenge_type(challenge))
            .expect("offered challenge was just found");
        let key_authorization = handle.key_authorization();
        match challenge {
            Challenge::Http01 => {
                state.set_http_answer(&handle.token, key_authorization.as_str());
                answers.tokens.push(handle.token.clone());
            }
            Challenge::TlsAlpn01 => {
                let certificate = alpn_certificate(&domain, key_authorization.digest().as_ref())?;
                state.set_alpn_answer(&domain, std::sync::Arc::new(certificate));
                answers.domains.push(domain.clone());
            }
        }
        handle.set_ready().await.map_err(ca("challenge ready"))?;
        chosen.push((domain, challenge));
    }

    let polling = RetryPolicy::new()
        .initial_delay(Duration::from_millis(500))
        .backoff(1.5)
        .timeout(VALIDATION_TIMEOUT);
    let status = order.poll_ready(&polling).await;
    match status {
        Ok(OrderStatus::Ready) => {}
        Ok(_) | Err(instant_acme::Error::Api(_)) => {
            let order_problem = match &status {
                Err(instant_acme::Error::Api(problem)) => Some(problem.clone()),
                _ => order.state().error.clone(),
            };
            return Err(refusal(&mut order, &chosen).await.unwrap_or_else(|| {
                OrderError::Invalid(
                    order_problem
                        .as_ref()
                        .map(problem_text)
                        .unwrap_or_else(|| "no problem detail given".into()),
                )
            }));
        }
        Err(instant_acme::Error::Timeout(_)) => return Err(OrderError::Timeout),
        Err(other) => return Err(ca("wait for validation")(other)),
    }
    drop(answers);

    let (csr, key_pem) = key_and_csr(&settings.domains)?;
    order.finalize_csr(&csr).await.map_err(ca("finalize"))?;
    let chain_pem = order
        .poll_certificate(&polling)
        .await
        .map_err(ca("download certificate"))?;
    Ok(Issued { chain_pem, key_pem })
}

/// The CA's reason for refusing a challenge, read from the authorizations of an invalid
/// order: the domain, the challenge type and the problem as the CA stated it.
async fn refusal(
    order: &mut instant_acme::Order,
    chosen: &[(String, Challenge)],
) -> Option<OrderError> {
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let Ok(mut authorization) = authorization else {
            continue;
        };
        let Ok(current) = authorization.refresh().await else {
            continue;
        };
        let domain = current.identifier().to_string();
        for challenge in &current.challenges {
            if let Some(problem) = &challenge.error {
                let kind = chosen
                    .iter()
                    .find(|(d, c)| *d == domain && challenge_type(*c) == challenge.r#type)
                    .map(|(_, c)| c.name())
                    .unwrap_or("unknown");
                return Some(OrderError::Refused {
                    domain,
                    challenge: kind,
                    problem: problem.clone(),
                });
            }
        }
    }
    None
}

fn names(list: impl Iterator<Item = String>) -> String {
    list.collect::<Vec<_>>().join(", ")
}
