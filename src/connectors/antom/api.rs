//! One signed call to Antom: the request signed with the merchant key, the answer's
//! signature checked with Antom's key before a word of it is believed, and its `result`
//! read (`resultStatus` S / F / U).

use serde_json::Value;

use super::sign::{self, Signer, Verifier};
use crate::connectors::ConnectorError;
use crate::domain::{Currency, Money};

/// Antom's `result` object: `resultStatus` S (done), F (refused, `resultCode` says why)
/// or U (unknown: the caller decides whether that code is a normal "in process").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultInfo {
    pub status: String,
    pub code: String,
    pub message: String,
}

/// A verified answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub result: ResultInfo,
    pub body: Value,
}

impl Answer {
    pub fn str(&self, key: &str) -> Option<&str> {
        str_at(&self.body, key)
    }

    /// F → `Rejected` with Antom's code; U → `Transport` (the outcome is not known: query
    /// later, never guess). S passes.
    pub fn require_success(self, api: &str) -> Result<Answer, ConnectorError> {
        match self.result.status.as_str() {
            "S" => Ok(self),
            "F" => Err(self.rejected()),
            _ => Err(self.unknown(api)),
        }
    }

    pub fn rejected(&self) -> ConnectorError {
        ConnectorError::Rejected {
            code: self.result.code.clone(),
            message: self.result.message.clone(),
        }
    }

    pub fn unknown(&self, api: &str) -> ConnectorError {
        ConnectorError::Transport(format!(
            "{api}: Antom answered resultStatus U ({}: {}), outcome unknown",
            self.result.code, self.result.message
        ))
    }
}

pub fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Reads `result` from an Antom JSON body.
pub fn result_of(body: &Value) -> Result<ResultInfo, String> {
    let r = body.get("result").ok_or("no `result`")?;
    let status = str_at(r, "resultStatus").ok_or("no `result.resultStatus`")?;
    if !matches!(status, "S" | "F" | "U") {
        return Err(format!("unknown resultStatus `{status}`"));
    }
    Ok(ResultInfo {
        status: status.into(),
        code: str_at(r, "resultCode").unwrap_or_default().into(),
        message: str_at(r, "resultMessage").unwrap_or_default().into(),
    })
}

/// `{"currency": "MYR", "value": "1000"}` → minor units (Antom's values are strings of
/// the smallest unit, never decimals).
pub fn amount_json(m: &Money) -> Value {
    serde_json::json!({ "currency": m.currency().code(), "value": m.minor().to_string() })
}

pub fn parse_amount(v: Option<&Value>) -> Result<Option<Money>, String> {
    let Some(v) = v else { return Ok(None) };
    let currency: Currency = str_at(v, "currency")
        .ok_or("amount without currency")?
        .parse()
        .map_err(|e| format!("amount currency: {e}"))?;
    let value = str_at(v, "value").ok_or("amount without value")?;
    if !value.bytes().all(|b| b.is_ascii_digit()) || value.len() > 18 {
        return Err(format!(
            "amount value `{value}` is not a whole number of minor units"
        ));
    }
    let minor: i64 = value
        .parse()
        .map_err(|_| format!("amount value `{value}`"))?;
    Money::new(minor, currency)
        .map(Some)
        .map_err(|e| format!("amount: {e}"))
}

/// Where calls go and who signs them.
pub struct Client {
    pub http: reqwest::Client,
    /// `base_url` without a trailing slash (`https://open-sea-global.alipay.com`, or the
    /// simulator's mount point).
    pub base_url: String,
    /// The path part of `base_url` (empty for Antom's own hosts): it is part of the
    /// request URI, hence of the signed path.
    pub base_path: String,
    pub client_id: String,
    pub signer: Signer,
    pub antom: Verifier,
}

impl Client {
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        client_id: String,
        signer: Signer,
        antom: Verifier,
    ) -> Result<Self, ConnectorError> {
        let base_url = base_url.trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&base_url)
            .map_err(|e| ConnectorError::Config(format!("antom base_url `{base_url}`: {e}")))?;
        Ok(Client {
            http,
            base_path: parsed.path().trim_end_matches('/').to_string(),
            base_url,
            client_id,
            signer,
            antom,
        })
    }

    /// `/ams/api/v1/payments/<api>`, or `/ams/sandbox/api/…` for a `SANDBOX_` client id
    /// (the rewrite every official SDK applies).
    pub fn api_path(&self, api: &str) -> String {
        let root = if self.client_id.starts_with("SANDBOX_") {
            "/ams/sandbox/api"
        } else {
            "/ams/api"
        };
        format!("{root}/v1/payments/{api}")
    }

    /// POSTs `body` to `payments/<api>` and returns the verified answer (any
    /// `resultStatus`). A 5xx or a network failure is `Transport`.
    pub async fn call(&self, api: &str, body: &Value) -> Result<Answer, ConnectorError> {
        let path = format!("{}{}", self.base_path, self.api_path(api));
        // `base_url` already ends with `base_path`.
        let url = format!("{}{}", self.base_url, self.api_path(api));
        let text = body.to_string();
        let time = crate::protocol_primitives::beijing_time::now_millis().to_string();
        let signature =
            self.signer
                .header(&sign::content("POST", &path, &self.client_id, &time, &text));
        let resp = self
            .http
            .post(&url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=UTF-8",
            )
            .header("Client-Id", &self.client_id)
            .header("Request-Time", &time)
            .header("Signature", signature)
            .body(text)
            .send()
            .await
            .map_err(|e| ConnectorError::Transport(format!("{api}: {e}")))?;
        let status = resp.status();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (sig, time, client) = (
            header("signature"),
            header("response-time"),
            header("client-id"),
        );
        let raw = resp
            .text()
            .await
            .map_err(|e| ConnectorError::Transport(format!("{api}: reading answer: {e}")))?;
        if status.is_server_error() {
            return Err(ConnectorError::Transport(format!(
                "{api}: Antom answered HTTP {status}"
            )));
        }
        self.verify_answer(api, &path, sig, time, client, &raw)?;
        if !status.is_success() {
            return Err(ConnectorError::Protocol(format!(
                "{api}: Antom answered HTTP {status}"
            )));
        }
        let body: Value = serde_json::from_str(&raw)
            .map_err(|e| ConnectorError::Protocol(format!("{api}: answer is not JSON: {e}")))?;
        let result =
            result_of(&body).map_err(|e| ConnectorError::Protocol(format!("{api}: {e}")))?;
        Ok(Answer { result, body })
    }

    /// Antom signs every answer over `POST <path>\n<client-id>.<response-time>.<body>`.
    /// An answer without `signature` or `response-time` is refused, never read: believing
    /// an unsigned "ORDER_NOT_EXIST" or "SUCCESS" would let anyone on the path steer
    /// orders.
    pub fn verify_answer(
        &self,
        api: &str,
        path: &str,
        sig: Option<String>,
        time: Option<String>,
        client: Option<String>,
        raw: &str,
    ) -> Result<(), ConnectorError> {
        let (Some(sig), Some(time)) = (sig, time) else {
            return Err(ConnectorError::Signature(format!(
                "{api}: answer without signature / response-time headers"
            )));
        };
        if client.as_deref().is_some_and(|c| c != self.client_id) {
            return Err(ConnectorError::Signature(format!(
                "{api}: answer for another client-id"
            )));
        }
        let content = sign::content("POST", path, &self.client_id, &time, raw);
        if self.antom.verify_header(&content, &sig) {
            Ok(())
        } else {
            Err(ConnectorError::Signature(format!(
                "{api}: answer signature does not verify with Antom's public key"
            )))
        }
    }
}
