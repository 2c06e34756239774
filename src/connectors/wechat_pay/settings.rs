//! `[channels.<name>.settings]` of a `wechat_pay` channel, and the key material it points
//! to. Keys come from PEM files or from environment variables named here, never from the
//! config text itself (the APIv3 key may be inline for sandbox configs).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::Secret;
use crate::domain::Method;
use crate::protocol_primitives::keys::{self, KeySource, KeysError};

use super::sign::{PlatformKey, PlatformKeys, RsaSigner};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// 商户号; the service provider's `sp_mchid` when `sub_merchants` are used.
    pub mchid: String,
    /// Official-account appid used for `jsapi`, `h5` and `native_qr` (and `sp_appid`).
    pub appid: String,
    /// Open-platform appid of the merchant's mobile app (`app`); defaults to `appid`.
    #[serde(default)]
    pub app_appid: Option<String>,
    /// Mini program appid (`mini_program`); defaults to `appid`.
    #[serde(default)]
    pub mini_program_appid: Option<String>,
    /// Serial number of the merchant API certificate (hex).
    pub merchant_serial_no: String,
    #[serde(default)]
    pub merchant_private_key_file: Option<PathBuf>,
    /// Name of an environment variable holding the key: PEM text, or a PKCS#12 as Base64.
    #[serde(default)]
    pub merchant_private_key_env: Option<String>,
    /// Set when the key is the PKCS#12 `apiclient_cert.p12` WeChat Pay issues (its
    /// password is the merchant id): the key and its certificate are read from it, and the
    /// certificate's serial must be `merchant_serial_no`.
    #[serde(default)]
    pub merchant_private_key_password: Option<Secret>,
    /// The 32-character APIv3 key inline: accepted only for the built-in simulator (a
    /// channel without `base_url`), so that the sandbox config runs as shipped.
    #[serde(default)]
    pub apiv3_key: Option<Secret>,
    /// A file holding the APIv3 key (a trailing line break is ignored).
    #[serde(default)]
    pub apiv3_key_file: Option<PathBuf>,
    /// Name of an environment variable holding the APIv3 key.
    #[serde(default)]
    pub apiv3_key_env: Option<String>,
    /// Trusted platform keys (certificates and/or WeChat Pay public keys).
    #[serde(default)]
    pub platform_keys: Vec<PlatformKeySettings>,
    /// `scene_info.h5_info.type` for H5 payments: `Wap`, `iOS` or `Android`.
    #[serde(default = "default_h5_type")]
    pub h5_type: String,
    #[serde(default)]
    pub h5_app_name: Option<String>,
    #[serde(default)]
    pub h5_app_url: Option<String>,
    /// Service-provider mode per paygate merchant id: those merchants' orders go to the
    /// partner endpoints with this `sub_mchid`.
    #[serde(default)]
    pub sub_merchants: BTreeMap<String, SubMerchant>,
    /// Read by the simulator only (its own platform key, see `simulator::wechat_pay`).
    #[serde(default)]
    pub simulator: Option<toml::Table>,
}

fn default_h5_type() -> String {
    "Wap".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformKeySettings {
    /// Required for public keys (`PUB_KEY_ID_…`); for certificates it is read from the
    /// certificate and, when also given, must match it.
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
    #[serde(default)]
    pub public_key_env: Option<String>,
    #[serde(default)]
    pub certificate_file: Option<PathBuf>,
    #[serde(default)]
    pub certificate_env: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubMerchant {
    pub sub_mchid: String,
    /// The sub-merchant's own appid (official account: `jsapi`, `h5`, `native_qr`, and
    /// the default for the other methods); payer openids are then `sub_openid`s of it.
    #[serde(default)]
    pub sub_appid: Option<String>,
    /// The sub-merchant's open-platform appid for `app`; defaults to `sub_appid`.
    #[serde(default)]
    pub sub_app_appid: Option<String>,
    /// The sub-merchant's mini program appid for `mini_program`; defaults to `sub_appid`.
    #[serde(default)]
    pub sub_mini_program_appid: Option<String>,
}

impl SubMerchant {
    /// The `sub_appid` an order of `method` is placed with (none: the service provider's
    /// `sp_appid` alone, payers identified by `sp_openid`).
    pub fn appid_for(&self, method: Method) -> Option<&str> {
        let specific = match method {
            Method::App => self.sub_app_appid.as_deref(),
            Method::MiniProgram => self.sub_mini_program_appid.as_deref(),
            _ => None,
        };
        specific.or(self.sub_appid.as_deref())
    }

    /// Every appid of this sub-merchant.
    pub fn appids(&self) -> impl Iterator<Item = &str> {
        [
            &self.sub_appid,
            &self.sub_app_appid,
            &self.sub_mini_program_appid,
        ]
        .into_iter()
        .filter_map(|a| a.as_deref())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SettingsError {
    pub field: String,
    pub reason: String,
}

fn err(field: impl Into<String>, reason: impl Into<String>) -> SettingsError {
    SettingsError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Reads PEM (or any secret text) from exactly one of a file or an environment variable.
pub fn read_source(
    field: &str,
    file: Option<&PathBuf>,
    env: Option<&String>,
) -> Result<Secret, SettingsError> {
    match (file, env) {
        (Some(path), None) => std::fs::read_to_string(path).map(Secret::new).map_err(|e| {
            err(
                format!("{field}_file"),
                format!("cannot read {}: {e}", path.display()),
            )
        }),
        (None, Some(var)) => std::env::var(var).map(Secret::new).map_err(|_| {
            err(
                format!("{field}_env"),
                format!("environment variable `{var}` is not set"),
            )
        }),
        (Some(_), Some(_)) => Err(err(
            field,
            "give either the _file or the _env form, not both",
        )),
        (None, None) => Err(err(field, "missing (set the _file or the _env form)")),
    }
}

impl Settings {
    /// The merchant API key (PEM, or the PKCS#12 with its certificate) from its file or
    /// environment variable. A certificate that came with it must be the one
    /// `merchant_serial_no` names, or every request would name a key WeChat Pay does not
    /// hold for this one.
    fn merchant_signer(&self) -> Result<RsaSigner, SettingsError> {
        let field = "merchant_private_key";
        let bad = |e: KeysError| err(field, e.to_string());
        let source = KeySource::from_settings(
            field,
            self.merchant_private_key_file
                .as_deref()
                .and_then(|p| p.to_str()),
            self.merchant_private_key_env.as_deref(),
        )
        .map_err(bad)?;
        let password = self.merchant_private_key_password.as_ref();
        let key = keys::load_signing_key(&source, password.map(|p| p.expose())).map_err(bad)?;
        if let Some(serial) = key.certificate_serial_hex() {
            if !serial.eq_ignore_ascii_case(self.merchant_serial_no.trim_start_matches('0')) {
                return Err(err(
                    "merchant_serial_no",
                    format!("the key's certificate has serial {serial}, not this one"),
                ));
            }
        }
        Ok(key.signer)
    }
}

/// Settings with their keys loaded and checked.
#[derive(Debug)]
pub struct Resolved {
    pub s: Settings,
    pub signer: RsaSigner,
    pub platform: PlatformKeys,
    pub apiv3_key: Secret,
}

impl Settings {
    pub fn parse(table: &toml::Table) -> Result<Settings, SettingsError> {
        let s: Settings = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| err("settings", e.message().to_string()))?;
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<(), SettingsError> {
        let digits =
            |v: &str| !v.is_empty() && v.len() <= 32 && v.bytes().all(|b| b.is_ascii_digit());
        if !digits(&self.mchid) {
            return Err(err("mchid", "must be the numeric merchant id"));
        }
        for (f, v) in [
            ("appid", Some(&self.appid)),
            ("app_appid", self.app_appid.as_ref()),
            ("mini_program_appid", self.mini_program_appid.as_ref()),
        ] {
            if let Some(v) = v {
                if v.is_empty() || v.len() > 32 {
                    return Err(err(f, "must be 1-32 characters"));
                }
            }
        }
        if self.merchant_serial_no.is_empty()
            || !self
                .merchant_serial_no
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
        {
            return Err(err(
                "merchant_serial_no",
                "must be the hex certificate serial",
            ));
        }
        if !matches!(self.h5_type.as_str(), "Wap" | "iOS" | "Android") {
            return Err(err("h5_type", "must be Wap, iOS or Android"));
        }
        for (id, sub) in &self.sub_merchants {
            if !digits(&sub.sub_mchid) {
                return Err(err(
                    format!("sub_merchants.{id}.sub_mchid"),
                    "must be numeric",
                ));
            }
            for (f, v) in [
                ("sub_appid", &sub.sub_appid),
                ("sub_app_appid", &sub.sub_app_appid),
                ("sub_mini_program_appid", &sub.sub_mini_program_appid),
            ] {
                if v.as_ref().is_some_and(|v| v.is_empty() || v.len() > 32) {
                    return Err(err(
                        format!("sub_merchants.{id}.{f}"),
                        "must be 1-32 characters",
                    ));
                }
            }
        }
        if self.platform_keys.is_empty() {
            return Err(err(
                "platform_keys",
                "at least one platform certificate or public key is needed to verify WeChat Pay",
            ));
        }
        Ok(())
    }

    /// Loads and checks all key material; fails at start-up, naming the field.
    pub fn resolve(self) -> Result<Resolved, SettingsError> {
        let signer = self.merchant_signer()?;
        let apiv3_key =
            match (&self.apiv3_key, &self.apiv3_key_file, &self.apiv3_key_env) {
                (Some(k), None, None) => k.clone(),
                (None, file, env) if file.is_some() || env.is_some() => {
                    let k = read_source("apiv3_key", file.as_ref(), env.as_ref())?;
                    Secret::new(k.expose().trim_end_matches(['\r', '\n']).to_string())
                }
                _ => return Err(err(
                    "apiv3_key",
                    "give exactly one of apiv3_key_file, apiv3_key_env or (sandbox only) apiv3_key",
                )),
            };
        if apiv3_key.expose().len() != 32 {
            return Err(err("apiv3_key", "must be exactly 32 bytes"));
        }
        let mut keys = Vec::new();
        for (i, k) in self.platform_keys.iter().enumerate() {
            let field = format!("platform_keys[{i}]");
            let key = if k.certificate_file.is_some() || k.certificate_env.is_some() {
                if k.public_key_file.is_some() || k.public_key_env.is_some() {
                    return Err(err(field, "a certificate or a public key, not both"));
                }
                let pem = read_source(
                    &format!("{field}.certificate"),
                    k.certificate_file.as_ref(),
                    k.certificate_env.as_ref(),
                )?;
                let key = PlatformKey::from_certificate_pem(pem.expose())
                    .map_err(|e| err(&field, e.to_string()))?;
                if let Some(s) = &k.serial {
                    if !s.eq_ignore_ascii_case(&key.serial) {
                        return Err(err(
                            format!("{field}.serial"),
                            format!("the certificate's serial is {}", key.serial),
                        ));
                    }
                }
                key
            } else {
                let id = k
                    .serial
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        err(
                            format!("{field}.serial"),
                            "a public key needs its id (PUB_KEY_ID_...)",
                        )
                    })?;
                let pem = read_source(
                    &format!("{field}.public_key"),
                    k.public_key_file.as_ref(),
                    k.public_key_env.as_ref(),
                )?;
                PlatformKey::from_public_key_pem(id, pem.expose())
                    .map_err(|e| err(&field, e.to_string()))?
            };
            keys.push(key);
        }
        Ok(Resolved {
            s: self,
            signer,
            platform: PlatformKeys::new(keys),
            apiv3_key,
        })
    }
}

impl Resolved {
    /// Every appid these settings may legitimately see in a notification.
    pub fn known_appids(&self) -> Vec<&str> {
        let mut v = vec![self.s.appid.as_str()];
        v.extend(self.s.app_appid.as_deref());
        v.extend(self.s.mini_program_appid.as_deref());
        v.extend(self.s.sub_merchants.values().flat_map(SubMerchant::appids));
        v
    }
}

#[cfg(test)]
mod tests;
