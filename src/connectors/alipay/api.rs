//! Building signed gateway requests and reading signed responses.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::sign::{extract_envelope, sign_content, REQUEST_SKIP};
use super::time::{format_gmt8, now_ms};
use super::AlipayConnector;
use crate::connectors::ConnectorError;

/// Business fields of one response (`code` 10000).
pub type Fields = Map<String, Value>;

impl AlipayConnector {
    /// Common parameters + `biz_content`, signed. `notify` and `return_url` are only sent
    /// with the payment-creating methods.
    pub(super) fn signed_params(
        &self,
        method: &str,
        biz: &Value,
        notify: bool,
        return_url: Option<&str>,
    ) -> BTreeMap<String, String> {
        let mut p = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            p.insert(k.to_string(), v.to_string());
        };
        put("app_id", &self.app_id);
        put("method", method);
        put("format", "JSON");
        put("charset", "utf-8");
        put("sign_type", "RSA2");
        put("timestamp", &format_gmt8(now_ms()));
        put("version", "1.0");
        put("biz_content", &biz.to_string());
        if notify {
            put("notify_url", &self.env.callback_url);
        }
        if let Some(url) = return_url {
            put("return_url", url);
        }
        if let Some(sns) = &self.cert {
            put("app_cert_sn", &sns.app_cert_sn);
            put("alipay_root_cert_sn", &sns.alipay_root_cert_sn);
        }
        let sign = self.signer.sign(&sign_content(&p, REQUEST_SKIP));
        p.insert("sign".into(), sign);
        p
    }

    /// One server-to-server call: POST the signed form, verify the signed answer, and
    /// turn `code` != 10000 into an error (`Rejected` with the `sub_code`).
    pub(super) async fn call(
        &self,
        method: &str,
        biz: Value,
        notify: bool,
    ) -> Result<Fields, ConnectorError> {
        let params = self.signed_params(method, &biz, notify, None);
        let resp = self
            .env
            .http
            .post(self.gateway_url())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded;charset=utf-8",
            )
            .body(form_encode(&params))
            .send()
            .await
            .map_err(|e| ConnectorError::Transport(format!("{method}: {e}")))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| ConnectorError::Transport(format!("{method}: reading response: {e}")))?;
        if status.is_server_error() {
            return Err(ConnectorError::Transport(format!(
                "{method}: gateway answered HTTP {status}"
            )));
        }
        if !status.is_success() {
            return Err(ConnectorError::Protocol(format!(
                "{method}: gateway answered HTTP {status}"
            )));
        }
        self.read_response(method, &body)
    }

    /// Verifies the signature over the raw `<method>_response` text, then checks `code`.
    pub(super) fn read_response(&self, method: &str, body: &str) -> Result<Fields, ConnectorError> {
        let env = extract_envelope(body, method)
            .map_err(|e| ConnectorError::Protocol(format!("{method}: {e}")))?;
        let fields: Fields = serde_json::from_str(&env.content)
            .map_err(|e| ConnectorError::Protocol(format!("{method}: {e}")))?;
        let code = str_field(&fields, "code").unwrap_or_default();
        match &env.sign {
            Some(sign) if !self.alipay.verify(&env.content, sign) => {
                return Err(ConnectorError::Signature(format!(
                    "{method}: response signature does not verify with Alipay's public key"
                )));
            }
            Some(_) => {}
            // Only the gateway's early refusals (`error_response`, before the method is
            // known) come unsigned. A `<method>_response` is always signed, whatever its
            // `code`: an unsigned one could be anyone's, and believing an unsigned refusal
            // (say `ACQ.TRADE_HAS_SUCCESS` or `ACQ.TRADE_NOT_EXIST`) would steer the engine.
            None if env.is_error_response => {}
            None => {
                return Err(ConnectorError::Signature(format!(
                    "{method}: `{}` without `sign`",
                    super::sign::response_key(method)
                )))
            }
        }
        if code == "10000" && !env.is_error_response {
            return Ok(fields);
        }
        Err(business_error(&fields))
    }

    /// Where requests go: the configured gateway (`https://openapi.alipay.com/gateway.do`)
    /// or the simulator. All parameters travel in the form body.
    pub(super) fn gateway_url(&self) -> &str {
        &self.env.base_url
    }

    /// The gateway URL with the signed parameters as its query: what a payer's browser
    /// is redirected to for page / wap payments.
    pub(super) fn gateway_get_url(&self, params: &BTreeMap<String, String>) -> String {
        let base = self.gateway_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}{}", form_encode(params))
    }
}

/// `code`/`sub_code` → error. `20000` and `ACQ.SYSTEM_ERROR` mean Alipay does not know the
/// outcome yet, so they become `Transport` (retry or query), never a refusal.
fn business_error(f: &Fields) -> ConnectorError {
    let code = str_field(f, "code").unwrap_or_default();
    let sub_code = str_field(f, "sub_code").unwrap_or_default();
    let msg = str_field(f, "sub_msg")
        .or_else(|| str_field(f, "msg"))
        .unwrap_or_default();
    if code == "20000" || sub_code == "ACQ.SYSTEM_ERROR" || sub_code.starts_with("isp.") {
        return ConnectorError::Transport(format!("Alipay busy ({code} {sub_code}): {msg}"));
    }
    let hint = match sub_code.as_str() {
        "isv.invalid-signature" => " (Alipay could not verify our signature: the app private key does not match the public key uploaded for this app_id)",
        "isv.invalid-app-id" => " (app_id unknown to this gateway: check app_id and the gateway URL, sandbox vs production)",
        "isv.invalid-timestamp" => " (our clock is off: Alipay rejects requests with a stale timestamp)",
        "ACQ.TRADE_HAS_SUCCESS" => " (already paid)",
        "ACQ.TRADE_HAS_CLOSE" => " (trade closed)",
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL" => " (refund amount exceeds what is left to refund)",
        _ => "",
    };
    ConnectorError::Rejected {
        code: if sub_code.is_empty() { code } else { sub_code },
        message: format!("{msg}{hint}"),
    }
}

pub(super) fn str_field(f: &Fields, key: &str) -> Option<String> {
    match f.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// `application/x-www-form-urlencoded` of the params (values percent-encoded; the
/// signature was made over the raw values).
pub fn form_encode(params: &BTreeMap<String, String>) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish()
}

/// Decodes a form / query string, refusing duplicated keys (a signed message must have
/// one meaning).
pub fn form_decode(text: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(text) {
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(format!("parameter `{k}` appears twice"));
        }
    }
    Ok(out)
}
