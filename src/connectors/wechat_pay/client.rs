//! One signed APIv3 call: sign the request, send it, verify the answer's signature before
//! trusting anything in it, and turn WeChat's error JSON into [`ConnectorError`].

use actix_web::web::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};

use crate::connectors::ConnectorError;

use super::api::ErrorBody;
use super::sign::{authorization_value, nonce, request_message, SignedHeaders};
use super::time::now_secs;
use super::WechatPayConnector;

pub(super) struct ApiResponse {
    pub status: u16,
    pub body: Bytes,
    /// Whether the platform signature over this response verified. Successful (2xx)
    /// answers are never returned unverified; error answers may be unsigned.
    pub verified: bool,
}

impl ApiResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConnectorError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ConnectorError::Protocol(format!("WeChat Pay answer does not parse: {e}")))
    }

    /// WeChat's `code`, when the body is its error JSON.
    pub fn error_code(&self) -> Option<String> {
        serde_json::from_slice::<ErrorBody>(&self.body)
            .ok()
            .map(|e| e.code)
    }

    /// The error this non-2xx answer means: rate limits and 5xx are retryable transport
    /// failures; any other refusal is the provider's business answer.
    pub fn into_error(self) -> ConnectorError {
        let parsed = serde_json::from_slice::<ErrorBody>(&self.body).ok();
        let (code, message) = match parsed {
            Some(e) => (e.code, e.message),
            None => (
                format!("HTTP_{}", self.status),
                String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(200)
                    .collect(),
            ),
        };
        if self.status >= 500 || self.status == 429 {
            ConnectorError::Transport(format!(
                "WeChat Pay HTTP {}: {code}: {message}",
                self.status
            ))
        } else {
            ConnectorError::Rejected { code, message }
        }
    }
}

impl WechatPayConnector {
    /// `path_and_query` is appended to the base URL; the canonical URL that is signed is
    /// the request path and query as WeChat receives them, i.e. without the base URL's path.
    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<String>,
    ) -> Result<ApiResponse, ConnectorError> {
        let url = format!(
            "{}{}",
            self.env.base_url.trim_end_matches('/'),
            path_and_query
        );
        let url = reqwest::Url::parse(&url)
            .map_err(|e| ConnectorError::Config(format!("bad WeChat Pay URL {url}: {e}")))?;
        // WeChat verifies over the URL as it receives it (`/v3/...`). A base URL with a
        // path (the simulator's mount point, or a forwarding proxy that strips its prefix)
        // is not part of what the provider sees, so it is not signed.
        let base_path = reqwest::Url::parse(&self.env.base_url)
            .map(|b| b.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        let path = url.path().strip_prefix(&base_path).unwrap_or(url.path());
        let canonical = match url.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        let body = body.unwrap_or_default();
        let ts = now_secs();
        let nonce = nonce();
        let cfg = &self.cfg;
        let signature = cfg
            .signer
            .sign(request_message(method.as_str(), &canonical, ts, &nonce, &body).as_bytes());
        let auth = authorization_value(
            "SHA256-RSA2048",
            &cfg.s.mchid,
            &nonce,
            ts,
            &cfg.s.merchant_serial_no,
            &signature,
        );
        let mut req = self
            .env
            .http
            .request(method.clone(), url)
            .timeout(self.timeout)
            .header(AUTHORIZATION, auth)
            .header(ACCEPT, "application/json")
            .header(
                USER_AGENT,
                concat!("paygate/", env!("CARGO_PKG_VERSION"), " (wechatpay-apiv3)"),
            );
        if method != reqwest::Method::GET {
            req = req.header(CONTENT_TYPE, "application/json").body(body);
        }
        let started = std::time::Instant::now();
        let resp = req
            .send()
            .await
            .map_err(|e| ConnectorError::Transport(format!("WeChat Pay {canonical}: {e}")))?;
        let status = resp.status().as_u16();
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (ts_h, nonce_h, sig_h, serial_h) = (
            header("Wechatpay-Timestamp"),
            header("Wechatpay-Nonce"),
            header("Wechatpay-Signature"),
            header("Wechatpay-Serial"),
        );
        let request_id = header("Request-ID");
        let body = resp.bytes().await.map_err(|e| {
            ConnectorError::Transport(format!("WeChat Pay {canonical}: reading body: {e}"))
        })?;
        tracing::debug!(
            path = %canonical,
            status,
            request_id = request_id.as_deref().unwrap_or(""),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "wechat pay call"
        );
        let signed = SignedHeaders {
            timestamp: ts_h.as_deref(),
            nonce: nonce_h.as_deref(),
            signature: sig_h.as_deref(),
            serial: serial_h.as_deref(),
        };
        let verified = match cfg.platform.verify(signed, &body, now_secs()) {
            Ok(()) => true,
            Err(e) if (200..300).contains(&status) => {
                return Err(ConnectorError::Signature(format!(
                    "WeChat Pay answer to {canonical}: {e}"
                )))
            }
            Err(_) => false,
        };
        Ok(ApiResponse {
            status,
            body,
            verified,
        })
    }
}
