//! Bearer-key authentication. Config holds only SHA-256 digests of keys; a request's key is
//! hashed and looked up, so no key is ever kept or compared in clear.

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use std::collections::HashMap;
use std::future::{ready, Ready};
use std::sync::Arc;

use super::{ApiError, AppState};
use crate::config::{sha256_hex, MerchantConfig};
use crate::domain::MerchantId;

/// Merchants by API-key digest and by id.
pub struct Merchants {
    by_key: HashMap<String, Arc<Merchant>>,
    by_id: HashMap<MerchantId, Arc<Merchant>>,
}

pub struct Merchant {
    pub id: MerchantId,
    pub config: MerchantConfig,
}

impl Merchants {
    pub fn new(list: &[MerchantConfig]) -> Merchants {
        let mut by_key = HashMap::new();
        let mut by_id = HashMap::new();
        for m in list {
            let Ok(id) = MerchantId::parse(&m.id) else {
                continue;
            };
            let merchant = Arc::new(Merchant {
                id: id.clone(),
                config: m.clone(),
            });
            by_key.insert(m.api_key_sha256.to_ascii_lowercase(), merchant.clone());
            by_id.insert(id, merchant);
        }
        Merchants { by_key, by_id }
    }

    pub fn get(&self, id: &MerchantId) -> Option<&Arc<Merchant>> {
        self.by_id.get(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &MerchantId> {
        self.by_id.keys()
    }

    fn by_key(&self, key: &str) -> Option<&Arc<Merchant>> {
        self.by_key.get(&sha256_hex(key))
    }
}

/// The token of `Authorization: Bearer <token>`, for merchant keys and the admin token
/// alike. The scheme name is case-insensitive (RFC 7235 §2.1) and clients differ in the
/// whitespace they send, so `bearer`, `BEARER` and runs of spaces or tabs are accepted.
fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = value.split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The merchant whose API key the request carries, if any (admission counts per merchant
/// before the handler authenticates).
pub(super) fn merchant_of<'a>(
    req: &HttpRequest,
    merchants: &'a Merchants,
) -> Option<&'a Arc<Merchant>> {
    merchants.by_key(bearer(req)?)
}

/// The authenticated merchant of a request.
pub struct Authed(pub Arc<Merchant>);

impl FromRequest for Authed {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().expect("app state");
        ready(match bearer(req) {
            None => Err(ApiError::unauthorized(
                "missing API key: send `Authorization: Bearer <key>`",
            )),
            Some(k) => state
                .merchants
                .by_key(k)
                .cloned()
                .map(Authed)
                .ok_or_else(|| ApiError::unauthorized("invalid API key")),
        })
    }
}

/// An operator request carrying the admin token.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().expect("app state");
        let expected = &state.config.admin.token_sha256;
        ready(match bearer(req) {
            _ if expected.is_empty() => Err(ApiError::new(
                actix_web::http::StatusCode::FORBIDDEN,
                "authentication_error",
                "admin_disabled",
                "admin routes are disabled: set [admin] token_sha256",
            )),
            Some(t) if constant_eq(&sha256_hex(t), &expected.to_ascii_lowercase()) => Ok(Admin),
            Some(_) => Err(ApiError::unauthorized("invalid admin token")),
            None => Err(ApiError::unauthorized("missing admin token")),
        })
    }
}

fn constant_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}
