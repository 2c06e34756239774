//! The simulated endpoints. Request checks follow WeChat's order: authentication
//! (`401 SIGN_ERROR`), then the body (`400 PARAM_ERROR` / `APPID_MCHID_NOT_MATCH` /
//! `MCH_NOT_EXISTS`), then business state (`ORDER_NOT_EXIST`, `ORDERPAID`, `ORDER_CLOSED`,
//! `OUT_TRADE_NO_USED`, `INVALID_REQUEST`, ...). Every answer, errors included, is signed.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use std::sync::Arc;

use crate::protocol_primitives::beijing_time::now_secs;

use super::api::ErrorBody;
use super::auth::{Authorization, MAX_CLOCK_SKEW_SECS};

use super::state::{txid_key, TradeRec};
use super::{wire, WechatPaySimulator};

/// A refusal in WeChat's shape.
pub(super) struct ApiError {
    status: u16,
    code: &'static str,
    message: String,
}

pub(super) fn fail(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        code,
        message: message.into(),
    }
}

pub(super) fn param(message: impl Into<String>) -> ApiError {
    fail(400, "PARAM_ERROR", message)
}

pub(super) fn storage(e: impl std::fmt::Display) -> ApiError {
    fail(500, "SYSTEM_ERROR", format!("系统错误: {e}"))
}

pub(super) type Answer = Result<(u16, String), ApiError>;

pub(super) fn json<T: serde::Serialize>(status: u16, v: &T) -> Answer {
    Ok((status, serde_json::to_string(v).expect("answer serializes")))
}

/// WeChat's reference rule for out_trade_no / out_refund_no.
pub(super) fn is_reference(v: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*@".contains(&b))
}

pub(super) fn valid_notify_url(u: &str) -> bool {
    match url::Url::parse(u) {
        // WeChat insists on https; the sandbox also accepts http for local use.
        Ok(p) => {
            matches!(p.scheme(), "http" | "https") && p.host().is_some() && p.query().is_none()
        }
        Err(_) => false,
    }
}

/// Parses a request body; a missing required field or a wrong type is WeChat's
/// `PARAM_ERROR`, naming the field.
pub(super) fn body_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            param(format!("参数校验失败: {e}"))
        } else {
            param(format!("请求体不是合法的JSON: {e}"))
        }
    })
}

pub(super) fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl WechatPaySimulator {
    pub(super) async fn handle(
        self: Arc<Self>,
        req: HttpRequest,
        body: web::Bytes,
    ) -> HttpResponse {
        let answer = match self.authenticate(&req, &body) {
            Ok(mchid) => self.route(&req, &body, &mchid).await,
            Err(e) => Err(e),
        };
        let (status, body) = match answer {
            Ok(ok) => ok,
            Err(e) => (
                e.status,
                serde_json::to_string(&ErrorBody {
                    code: e.code.into(),
                    message: e.message,
                })
                .expect("error serializes"),
            ),
        };
        let mut resp = HttpResponse::build(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        );
        for (k, v) in wire::signature_headers(
            &self.platform,
            &self.platform_serial,
            now_secs(),
            body.as_bytes(),
        ) {
            resp.insert_header((k, v));
        }
        resp.insert_header(("Request-ID", format!("SIM-{}", wire::random_alnum(24))));
        if body.is_empty() {
            resp.finish()
        } else {
            resp.content_type("application/json").body(body)
        }
    }

    /// Checks the `Authorization` header exactly as WeChat does; answers the mchid.
    fn authenticate(&self, req: &HttpRequest, body: &[u8]) -> Result<String, ApiError> {
        let sign_error = |m: &str| fail(401, "SIGN_ERROR", m.to_string());
        let header = req
            .headers()
            .get("Authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| sign_error("缺少Authorization头 (missing Authorization)"))?;
        let auth = Authorization::parse(header)
            .map_err(|e| sign_error(&format!("Authorization格式错误: {e}")))?;
        if auth.mchid != self.s.mchid {
            return Err(sign_error("商户号与证书不匹配 (unknown mchid)"));
        }
        if !auth
            .serial_no
            .eq_ignore_ascii_case(&self.s.merchant_serial_no)
        {
            return Err(sign_error(
                "商户证书序列号有误 (serial_no does not match the merchant certificate)",
            ));
        }
        let ts: i64 = auth
            .timestamp
            .parse()
            .map_err(|_| sign_error("timestamp格式错误"))?;
        if now_secs().abs_diff(ts) >= MAX_CLOCK_SKEW_SECS {
            return Err(sign_error(
                "请求已过期 (timestamp outside the 5 minute window)",
            ));
        }
        let body = std::str::from_utf8(body).map_err(|_| sign_error("body is not UTF-8"))?;
        // WeChat verifies over the URL it received, `/v3/...` (its API is at the host's
        // root). Mounted under `/sandbox/wechat_pay`, the simulator reconstructs that
        // provider-relative path, so a client given the simulator as its base URL verifies
        // as against WeChat; a client that signs the whole request target it sent (the
        // prefix included, as some SDKs do) is accepted too.
        let relative = match req.uri().query() {
            Some(q) => format!("/v3/{}?{q}", req.match_info().query("tail")),
            None => format!("/v3/{}", req.match_info().query("tail")),
        };
        let received = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let message = |url: &str| {
            wire::request_message(
                req.method().as_str(),
                url,
                &auth.timestamp,
                &auth.nonce_str,
                body,
            )
        };
        let verifies = |url: &str| {
            self.merchant_key
                .verify(message(url).as_bytes(), &auth.signature)
        };
        if !verifies(&relative) && (received == relative || !verifies(received)) {
            return Err(sign_error(
                "签名错误 (the signature does not verify with the merchant certificate)",
            ));
        }
        Ok(auth.mchid)
    }

    async fn route(self: &Arc<Self>, req: &HttpRequest, body: &[u8], mchid: &str) -> Answer {
        let path = req.match_info().query("tail").to_string();
        let query = req.query_string();
        let segs: Vec<&str> = path.split('/').collect();
        let get = req.method() == actix_web::http::Method::GET;
        let post = req.method() == actix_web::http::Method::POST;
        match segs.as_slice() {
            ["pay", "transactions", kind] if post => self.prepay(kind, false, body, mchid),
            ["pay", "partner", "transactions", kind] if post && *kind != "out-trade-no" => {
                self.prepay(kind, true, body, mchid)
            }
            ["pay", "transactions", "out-trade-no", otn] if get => {
                self.query(otn, false, query, mchid)
            }
            ["pay", "partner", "transactions", "out-trade-no", otn] if get => {
                self.query(otn, true, query, mchid)
            }
            ["pay", "transactions", "id", txid] if get => {
                let otn: Option<String> = self.env.state.get(&txid_key(txid)).map_err(storage)?;
                match otn {
                    Some(otn) => self.query(&otn, false, query, mchid),
                    None => Err(fail(404, "ORDER_NOT_EXIST", "订单不存在")),
                }
            }
            ["pay", "transactions", "out-trade-no", otn, "close"] if post => {
                self.close(otn, false, body, mchid)
            }
            ["pay", "partner", "transactions", "out-trade-no", otn, "close"] if post => {
                self.close(otn, true, body, mchid)
            }
            ["refund", "domestic", "refunds"] if post => self.refund(body, mchid),
            ["refund", "domestic", "refunds", orn] if get => self.refund_query(orn, query, mchid),
            _ => Err(fail(
                404,
                "NOT_FOUND",
                format!("no such API: {} /v3/{path}", req.method()),
            )),
        }
    }

    /// Checks the (sp_)mchid / sub_mchid pair of a body or query against the caller.
    pub(super) fn check_owner(
        &self,
        partner: bool,
        mchid: Option<&str>,
        sp_mchid: Option<&str>,
        sub_mchid: Option<&str>,
        caller: &str,
    ) -> Result<(), ApiError> {
        if partner {
            if mchid.is_some() {
                return Err(param(
                    "服务商接口请使用sp_mchid (use sp_mchid on partner APIs)",
                ));
            }
            match sp_mchid {
                None => return Err(param("缺少参数sp_mchid")),
                Some(sp) if sp != caller => {
                    return Err(fail(
                        400,
                        "INVALID_REQUEST",
                        "sp_mchid与请求头中的商户号不一致",
                    ))
                }
                _ => {}
            }
            match sub_mchid {
                None => Err(param("缺少参数sub_mchid")),
                Some(sub) if self.sub_merchant(sub).is_none() => Err(fail(
                    400,
                    "MCH_NOT_EXISTS",
                    "子商户号不存在或与服务商无绑定关系",
                )),
                _ => Ok(()),
            }
        } else {
            if sp_mchid.is_some() || sub_mchid.is_some() {
                return Err(param("普通商户接口不接受sp_mchid/sub_mchid"));
            }
            match mchid {
                None => Err(param("缺少参数mchid")),
                Some(m) if m != caller => Err(fail(
                    400,
                    "INVALID_REQUEST",
                    "mchid与请求头中的商户号不一致",
                )),
                _ => Ok(()),
            }
        }
    }

    pub(super) fn trade_owned(
        &self,
        otn: &str,
        partner: bool,
        mchid: Option<&str>,
        sub_mchid: Option<&str>,
    ) -> Result<TradeRec, ApiError> {
        let trade = self
            .load_trade(otn)
            .map_err(storage)?
            .ok_or_else(|| fail(404, "ORDER_NOT_EXIST", "订单不存在"))?;
        let (owner, owner_sub) = trade.owner();
        let same = owner == mchid
            && (!partner || owner_sub == sub_mchid)
            && (partner == trade.req.sp_mchid.is_some());
        if same {
            Ok(trade)
        } else {
            Err(fail(404, "ORDER_NOT_EXIST", "订单不存在"))
        }
    }
}
