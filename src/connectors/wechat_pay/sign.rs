//! `WECHATPAY2-SHA256-RSA2048`: SHA256withRSA (PKCS#1 v1.5) over newline-terminated lines.
//! Requests are signed with the merchant API key; responses and callbacks are verified
//! with the platform key named by `Wechatpay-Serial` (a platform certificate serial or, in
//! the newer public-key mode, a `PUB_KEY_ID_…`). Several platform keys may be live at
//! once during a rotation. Signing keys never appear in `Debug` output or logs.

use rand::Rng;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The only signature type WeChat Pay v3 uses.
pub const SIGNATURE_TYPE: &str = "WECHATPAY2-SHA256-RSA2048";
/// Replay window of responses and callbacks (the SDKs' `FiveMinute`).
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;
/// Prefix of the deliberately invalid probe callbacks WeChat sends to test verification.
pub const SIGNTEST_PREFIX: &str = "WECHATPAY/SIGNTEST/";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("key material: {0}")]
    Key(String),
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("timestamp outside the {MAX_CLOCK_SKEW_SECS} s window")]
    Stale,
    #[error("no platform key with serial `{0}`")]
    UnknownSerial(String),
    #[error("signature probe (WECHATPAY/SIGNTEST)")]
    Probe,
    #[error("signature does not verify")]
    Invalid,
    #[error("malformed Authorization: {0}")]
    Authorization(&'static str),
}

/// `METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n`; URL is the path plus query as sent.
pub fn request_message(
    method: &str,
    canonical_url: &str,
    ts: i64,
    nonce: &str,
    body: &str,
) -> String {
    format!("{method}\n{canonical_url}\n{ts}\n{nonce}\n{body}\n")
}

/// `TIMESTAMP\nNONCE\nBODY\n` over the raw response or callback body.
pub fn response_message(ts: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + 64);
    m.extend_from_slice(ts.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(nonce.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(body);
    m.push(b'\n');
    m
}

/// The header value layout (WX-4); `algorithm` is `SHA256-RSA2048` in production.
pub fn authorization_value(
    algorithm: &str,
    mchid: &str,
    nonce: &str,
    ts: i64,
    serial: &str,
    signature: &str,
) -> String {
    format!(
        "WECHATPAY2-{algorithm} mchid=\"{mchid}\",nonce_str=\"{nonce}\",timestamp=\"{ts}\",serial_no=\"{serial}\",signature=\"{signature}\""
    )
}

/// A random 32-character nonce of `[A-Za-z0-9]`, as the official SDKs send.
pub fn nonce() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..32)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// The merchant API key and WeChat's platform keys: SHA256withRSA with Base64 signatures
/// is a shared primitive; what is signed (the messages above) is this module's business.
pub use crate::protocol_primitives::rsa::{KeyError, RsaPublicKey, RsaSigner};

impl From<KeyError> for SignError {
    fn from(e: KeyError) -> Self {
        SignError::Key(e.to_string())
    }
}

/// One platform verification key with the id WeChat puts in `Wechatpay-Serial`.
#[derive(Debug, Clone)]
pub struct PlatformKey {
    pub serial: String,
    pub key: RsaPublicKey,
    /// Certificate validity in Unix seconds; public-key mode keys have none.
    pub valid: Option<(i64, i64)>,
}

impl PlatformKey {
    /// Platform-certificate mode: the serial comes from the certificate (upper-case hex).
    pub fn from_certificate_pem(pem_text: &str) -> Result<Self, SignError> {
        let block = pem::parse(pem_text.trim())
            .map_err(|_| SignError::Key("certificate is not PEM".into()))?;
        if block.tag() != "CERTIFICATE" {
            return Err(SignError::Key(format!(
                "expected a `CERTIFICATE` PEM, found `{}`",
                block.tag()
            )));
        }
        let (_, cert) = X509Certificate::from_der(block.contents())
            .map_err(|_| SignError::Key("malformed certificate".into()))?;
        let raw = cert.raw_serial();
        let first = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
        let serial = hex::encode_upper(&raw[first..]);
        let validity = cert.validity();
        Ok(PlatformKey {
            serial,
            key: RsaPublicKey::from_spki(cert.public_key())?,
            valid: Some((
                validity.not_before.timestamp(),
                validity.not_after.timestamp(),
            )),
        })
    }

    /// Public-key mode (微信支付公钥): the id (`PUB_KEY_ID_…`) is configured with the key.
    pub fn from_public_key_pem(id: &str, pem_text: &str) -> Result<Self, SignError> {
        Ok(PlatformKey {
            serial: id.to_string(),
            key: RsaPublicKey::from_pem(pem_text)?,
            valid: None,
        })
    }
}

/// The `Wechatpay-*` headers of a response or callback.
#[derive(Debug, Clone, Copy)]
pub struct SignedHeaders<'a> {
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub serial: Option<&'a str>,
}

/// The set of platform keys a merchant trusts.
#[derive(Debug, Clone, Default)]
pub struct PlatformKeys {
    keys: Vec<PlatformKey>,
}

impl PlatformKeys {
    pub fn new(keys: Vec<PlatformKey>) -> Self {
        PlatformKeys { keys }
    }

    pub fn serials(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.serial.as_str())
    }

    /// Probe, then freshness, then key choice, then the signature itself.
    pub fn verify(
        &self,
        h: SignedHeaders<'_>,
        body: &[u8],
        now_secs: i64,
    ) -> Result<(), SignError> {
        let signature = h
            .signature
            .ok_or(SignError::MissingHeader("Wechatpay-Signature"))?;
        if signature.starts_with(SIGNTEST_PREFIX) {
            return Err(SignError::Probe);
        }
        let ts = h
            .timestamp
            .ok_or(SignError::MissingHeader("Wechatpay-Timestamp"))?;
        let nonce = h.nonce.ok_or(SignError::MissingHeader("Wechatpay-Nonce"))?;
        let serial = h
            .serial
            .ok_or(SignError::MissingHeader("Wechatpay-Serial"))?;
        let ts_num: i64 = ts.trim().parse().map_err(|_| SignError::Stale)?;
        // `abs_diff` cannot wrap: a timestamp near i64::MIN is stale, not accepted.
        if now_secs.abs_diff(ts_num) >= MAX_CLOCK_SKEW_SECS as u64 {
            return Err(SignError::Stale);
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.serial.eq_ignore_ascii_case(serial.trim()))
            .ok_or_else(|| SignError::UnknownSerial(serial.chars().take(64).collect()))?;
        if let Some((from, to)) = key.valid {
            if now_secs < from || now_secs > to {
                return Err(SignError::Key(format!(
                    "platform certificate {} is not valid now",
                    key.serial
                )));
            }
        }
        if key
            .key
            .verify(&response_message(ts, nonce, body), signature)
        {
            Ok(())
        } else {
            Err(SignError::Invalid)
        }
    }
}

/// An `Authorization` value read back, so the connector's tests can check the header it
/// writes (the simulator reads headers with its own parser).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub mchid: String,
    pub nonce: String,
    pub timestamp: String,
    pub serial_no: String,
    pub signature: String,
}

impl Authorization {
    pub fn parse(value: &str) -> Result<Self, SignError> {
        let rest = value
            .strip_prefix(SIGNATURE_TYPE)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or(SignError::Authorization(
                "scheme must be WECHATPAY2-SHA256-RSA2048",
            ))?;
        let mut out = Authorization {
            mchid: String::new(),
            nonce: String::new(),
            timestamp: String::new(),
            serial_no: String::new(),
            signature: String::new(),
        };
        for part in rest.split(',') {
            let (k, v) = part
                .trim()
                .split_once('=')
                .ok_or(SignError::Authorization("parameters are key=\"value\""))?;
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or(SignError::Authorization("values must be quoted"))?
                .to_string();
            match k {
                "mchid" => out.mchid = v,
                "nonce_str" => out.nonce = v,
                "timestamp" => out.timestamp = v,
                "serial_no" => out.serial_no = v,
                "signature" => out.signature = v,
                _ => return Err(SignError::Authorization("unknown parameter")),
            }
        }
        if out.mchid.is_empty()
            || out.nonce.is_empty()
            || out.timestamp.is_empty()
            || out.serial_no.is_empty()
            || out.signature.is_empty()
        {
            return Err(SignError::Authorization("a parameter is missing"));
        }
        Ok(out)
    }
}

/// `wx.requestPayment` / `WeixinJSBridge` `paySign` over `appId\ntimeStamp\nnonceStr\npackage\n`.
pub fn jsapi_pay_sign(
    signer: &RsaSigner,
    appid: &str,
    ts: &str,
    nonce: &str,
    package: &str,
) -> String {
    signer.sign(format!("{appid}\n{ts}\n{nonce}\n{package}\n").as_bytes())
}

/// APP OpenSDK `sign` over `appid\ntimestamp\nnoncestr\nprepayid\n` (bare prepay id).
pub fn app_sign(signer: &RsaSigner, appid: &str, ts: &str, nonce: &str, prepay_id: &str) -> String {
    signer.sign(format!("{appid}\n{ts}\n{nonce}\n{prepay_id}\n").as_bytes())
}

#[cfg(test)]
mod tests;
