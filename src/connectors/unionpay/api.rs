//! Building signed requests and reading signed synchronous answers.

use std::collections::BTreeMap;

use super::sign::{sign_request, verify};
use super::wire::{form_encode, parse_answer};
use super::UnionPayConnector;
use crate::connectors::ConnectorError;
use crate::domain::Millis;
use crate::protocol_primitives::beijing_time;

pub const FRONT_TRANS: &str = "/gateway/api/frontTransReq.do";
pub const APP_TRANS: &str = "/gateway/api/appTransReq.do";
pub const BACK_TRANS: &str = "/gateway/api/backTransReq.do";
pub const QUERY_TRANS: &str = "/gateway/api/queryTrans.do";

pub type Fields = BTreeMap<String, String>;

/// `txnTime` / `payTimeout`: `YYYYMMDDhhmmss` in Beijing time.
pub fn txn_time(ms: Millis) -> String {
    beijing_time::format_gmt8(ms)
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

/// `YYYYMMDDhhmmss` (Beijing) → unix ms.
pub fn parse_txn_time(s: &str) -> Option<Millis> {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    beijing_time::parse_gmt8(&format!(
        "{}-{}-{} {}:{}:{}",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[8..10],
        &s[10..12],
        &s[12..14]
    ))
}

/// One transaction's own fields; [`UnionPayConnector::signed`] adds the common ones.
pub struct Txn<'a> {
    pub txn_type: &'a str,
    pub sub_type: &'a str,
    pub biz_type: &'a str,
    pub channel_type: &'a str,
    pub order_id: &'a str,
    pub txn_time: String,
}

impl UnionPayConnector {
    /// The common fields, the transaction's and `extra`, with `certId` and `signature`.
    pub(super) fn signed(&self, txn: &Txn<'_>, extra: &[(&str, String)]) -> Fields {
        let mut f = Fields::new();
        // Empty fields are not sent at all (UnionPay signs what it receives).
        let mut put = |k: &str, v: &str| {
            if !v.is_empty() {
                f.insert(k.to_string(), v.to_string());
            }
        };
        put("version", "5.1.0");
        put("encoding", "utf-8");
        put("signMethod", "01");
        put("accessType", "0");
        put("merId", &self.mer_id);
        put("certId", &self.cert_id);
        put("txnType", txn.txn_type);
        put("txnSubType", txn.sub_type);
        put("bizType", txn.biz_type);
        put("channelType", txn.channel_type);
        put("orderId", txn.order_id);
        put("txnTime", &txn.txn_time);
        for (k, v) in extra {
            put(k, v);
        }
        sign_request(&mut f, &self.signer);
        f
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.env.base_url.trim_end_matches('/'))
    }

    /// POSTs a signed request, verifies the signed answer, and maps `respCode`:
    /// `00` is the answer; `03`/`04`/`05` (and HTTP 5xx, timeouts) mean the outcome is
    /// unknown (`Transport`: query later); anything else is UnionPay's refusal.
    pub(super) async fn call(&self, path: &str, fields: &Fields) -> Result<Fields, ConnectorError> {
        let what = path.rsplit('/').next().unwrap_or(path);
        let resp = self
            .env
            .http
            .post(self.url(path))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded;charset=UTF-8",
            )
            .body(form_encode(fields))
            .send()
            .await
            .map_err(|e| ConnectorError::Transport(format!("{what}: {e}")))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| ConnectorError::Transport(format!("{what}: reading answer: {e}")))?;
        if status.is_server_error() {
            return Err(ConnectorError::Transport(format!("{what}: HTTP {status}")));
        }
        if !status.is_success() {
            return Err(ConnectorError::Protocol(format!("{what}: HTTP {status}")));
        }
        let answer =
            parse_answer(&body).map_err(|e| ConnectorError::Protocol(format!("{what}: {e}")))?;
        self.verify_message(&answer)
            .map_err(|e| ConnectorError::Signature(format!("{what}: {e}")))?;
        if let Some(m) = answer.get("merId").filter(|m| !m.is_empty()) {
            if m != &self.mer_id {
                return Err(ConnectorError::Protocol(format!(
                    "{what}: answer for merId {m}, not ours"
                )));
            }
        }
        let code = answer.get("respCode").cloned().unwrap_or_default();
        let msg = answer.get("respMsg").cloned().unwrap_or_default();
        match code.as_str() {
            "00" => Ok(answer),
            "03" | "04" | "05" => Err(ConnectorError::Transport(format!(
                "{what}: UnionPay is still processing ({code} {msg})"
            ))),
            _ => Err(ConnectorError::Rejected { code, message: msg }),
        }
    }

    /// `signPubKeyCert` validated against the configured chain first, then the signature.
    pub(super) fn verify_message(&self, fields: &Fields) -> Result<(), String> {
        if fields.get("signMethod").map(String::as_str) != Some("01") {
            return Err("signMethod is not 01 (SHA256withRSA)".into());
        }
        let cert = fields
            .get("signPubKeyCert")
            .filter(|c| !c.is_empty())
            .ok_or("no signPubKeyCert")?;
        let key = self
            .trust
            .validate(cert, (self.now_ms)() / 1000)
            .map_err(|e| e.to_string())?;
        if verify(fields, &key) {
            Ok(())
        } else {
            Err("signature does not verify with signPubKeyCert".into())
        }
    }
}
