//! Calling Stripe: `Authorization: Bearer <secret key>`, the pinned `Stripe-Version`, an
//! `Idempotency-Key` on every POST, form bodies (`form.rs`), JSON answers, and Stripe's
//! error object `{"error": {type, code, decline_code, message, param}}` turned into the
//! connector's errors.
//!
//! Idempotency keys are derived from paygate's own ids and the operation
//! (`paygate-<order ref>-create`, `paygate-<refund ref>-refund`, …), never random: a create
//! retried after a timeout or a lost answer carries the same key, and Stripe answers it
//! with the result of the first attempt instead of making a second charge. Stripe keeps
//! keys for at least 24 hours, longer than any paygate order lives unpaid.

use serde_json::Value;

use super::super::ConnectorError;
use super::form;
use crate::config::Secret;

/// The API version every request and the webhook endpoint are pinned to (the version of
/// the official clients paygate's field names were checked against).
pub const STRIPE_VERSION: &str = "2026-06-24.dahlia";

/// A Stripe answer: its JSON body, and whether Stripe replayed a saved answer for a reused
/// idempotency key (`Idempotent-Replayed: true`).
#[derive(Debug, Clone)]
pub struct Answer {
    pub body: Value,
    pub replayed: bool,
}

pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub secret_key: Secret,
}

impl Api {
    pub async fn post(
        &self,
        path: &str,
        params: &Value,
        idempotency_key: &str,
    ) -> Result<Answer, ConnectorError> {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Idempotency-Key", idempotency_key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form::encode(params));
        self.send(req).await
    }

    /// `GET path?query` (the query given as a flat list of already bracketed keys).
    pub async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Answer, ConnectorError> {
        let req = self.http.get(format!("{}{path}", self.base)).query(query);
        self.send(req).await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Answer, ConnectorError> {
        let res = req
            .bearer_auth(self.secret_key.expose())
            .header("Stripe-Version", STRIPE_VERSION)
            .send()
            .await
            .map_err(|e| ConnectorError::Transport(format!("Stripe: {e}")))?;
        let status = res.status().as_u16();
        let replayed = res
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        let text = res
            .text()
            .await
            .map_err(|e| ConnectorError::Transport(format!("Stripe: {e}")))?;
        if (200..300).contains(&status) {
            let body = serde_json::from_str(&text)
                .map_err(|e| ConnectorError::Protocol(format!("Stripe answered non-JSON: {e}")))?;
            return Ok(Answer { body, replayed });
        }
        Err(map_error(status, &text))
    }
}

/// Stripe's error answer to the connector's error: outages, rate limits and concurrent use
/// of a key leave the outcome unknown (`Transport`: retry with the same key, or query);
/// everything else is Stripe's refusal with its own code (`decline_code` first for a card
/// decline, then `code`, then `type`).
pub fn map_error(status: u16, body: &str) -> ConnectorError {
    let err = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").cloned())
        .unwrap_or(Value::Null);
    let field = |k: &str| err.get(k).and_then(Value::as_str).map(str::to_string);
    let kind = field("type").unwrap_or_default();
    let code = field("code");
    if status >= 500
        || status == 429
        || code.as_deref() == Some("idempotency_key_in_use")
        || code.as_deref() == Some("lock_timeout")
    {
        return ConnectorError::Transport(format!(
            "Stripe answered {status}{}",
            code.map(|c| format!(" ({c})")).unwrap_or_default()
        ));
    }
    if err.is_null() {
        return ConnectorError::Protocol(format!(
            "Stripe answered {status} without an error object"
        ));
    }
    let code = field("decline_code").or(code).unwrap_or_else(|| {
        if kind.is_empty() {
            format!("http_{status}")
        } else {
            kind.clone()
        }
    });
    let mut message = field("message").unwrap_or_else(|| kind.clone());
    if let Some(p) = field("param") {
        message = format!("{message} (param `{p}`)");
    }
    // The SDKs' AuthenticationError / PermissionError: paygate's key, not the payment.
    let code = match status {
        401 => "authentication_error".to_string(),
        403 => "permission_error".to_string(),
        _ => code,
    };
    if status == 401 || status == 403 {
        message = format!("Stripe refused paygate's secret key: {message}");
    }
    ConnectorError::Rejected { code, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_errors_become_clear_refusals_or_unknown_outcomes() {
        let e = map_error(
            400,
            r#"{"error":{"type":"invalid_request_error","code":"amount_too_small","message":"Amount must be at least $0.50 usd","param":"amount"}}"#,
        );
        assert_eq!(
            e,
            ConnectorError::Rejected {
                code: "amount_too_small".into(),
                message: "Amount must be at least $0.50 usd (param `amount`)".into()
            }
        );
        let decline = map_error(
            402,
            r#"{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds."}}"#,
        );
        assert!(
            matches!(decline, ConnectorError::Rejected { ref code, .. } if code == "insufficient_funds")
        );
        let idem = map_error(
            400,
            r#"{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters they were first used with."}}"#,
        );
        assert!(
            matches!(idem, ConnectorError::Rejected { ref code, .. } if code == "idempotency_error")
        );
        let auth = map_error(
            401,
            r#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****"}}"#,
        );
        assert!(auth.to_string().contains("secret key"), "{auth}");
        assert!(
            matches!(auth, ConnectorError::Rejected { ref code, .. } if code == "authentication_error")
        );
        for (status, body) in [
            (500, r#"{"error":{"type":"api_error"}}"#),
            (503, ""),
            (
                429,
                r#"{"error":{"type":"invalid_request_error","code":"rate_limit"}}"#,
            ),
            (
                409,
                r#"{"error":{"type":"invalid_request_error","code":"idempotency_key_in_use"}}"#,
            ),
        ] {
            assert_eq!(
                map_error(status, body).kind(),
                "transport",
                "{status} {body}"
            );
        }
        assert_eq!(map_error(400, "<html>").kind(), "protocol");
    }
}
