//! The simulated endpoints. Request checks follow WeChat's order: authentication
//! (`401 SIGN_ERROR`), then the body (`400 PARAM_ERROR` / `APPID_MCHID_NOT_MATCH` /
//! `MCH_NOT_EXISTS`), then business state (`ORDER_NOT_EXIST`, `ORDERPAID`, `ORDER_CLOSED`,
//! `OUT_TRADE_NO_USED`, `INVALID_REQUEST`, ...). Every answer, errors included, is signed.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use std::sync::Arc;

use crate::connectors::wechat_pay::api::{
    CloseRequest, ErrorBody, PrepayRequest, PrepayResponse, RefundAmount, RefundRecord,
    RefundRequest,
};
use crate::connectors::wechat_pay::sign::{request_message, Authorization, MAX_CLOCK_SKEW_SECS};
use crate::connectors::wechat_pay::time::{format_cst, now_millis, now_secs, parse_rfc3339};

use super::state::{txid_key, RefundRec, TradeRec};
use super::{wire, WechatPaySimulator};

/// A refusal in WeChat's shape.
pub(super) struct ApiError {
    status: u16,
    code: &'static str,
    message: String,
}

fn fail(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        code,
        message: message.into(),
    }
}

fn param(message: impl Into<String>) -> ApiError {
    fail(400, "PARAM_ERROR", message)
}

fn storage(e: impl std::fmt::Display) -> ApiError {
    fail(500, "SYSTEM_ERROR", format!("系统错误: {e}"))
}

type Answer = Result<(u16, String), ApiError>;

fn json<T: serde::Serialize>(status: u16, v: &T) -> Answer {
    Ok((status, serde_json::to_string(v).expect("answer serializes")))
}

/// WeChat's reference rule for out_trade_no / out_refund_no.
fn is_reference(v: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*@".contains(&b))
}

fn valid_notify_url(u: &str) -> bool {
    match url::Url::parse(u) {
        // WeChat insists on https; the sandbox also accepts http for local use.
        Ok(p) => {
            matches!(p.scheme(), "http" | "https") && p.host().is_some() && p.query().is_none()
        }
        Err(_) => false,
    }
}

fn query_param(query: &str, name: &str) -> Option<String> {
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
        if (now_secs() - ts).abs() >= MAX_CLOCK_SKEW_SECS {
            return Err(sign_error(
                "请求已过期 (timestamp outside the 5 minute window)",
            ));
        }
        let body = std::str::from_utf8(body).map_err(|_| sign_error("body is not UTF-8"))?;
        let url = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let message = request_message(req.method().as_str(), url, ts, &auth.nonce, body);
        if !self
            .merchant_key
            .verify(message.as_bytes(), &auth.signature)
        {
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
    fn check_owner(
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

    fn trade_owned(
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

    fn prepay(&self, kind: &str, partner: bool, body: &[u8], caller: &str) -> Answer {
        let trade_type = match kind {
            "jsapi" => "JSAPI",
            "app" => "APP",
            "h5" => "MWEB",
            "native" => "NATIVE",
            _ => return Err(fail(404, "NOT_FOUND", "no such API")),
        };
        let r: PrepayRequest = serde_json::from_slice(body)
            .map_err(|e| param(format!("请求体不是合法的JSON: {e}")))?;
        self.check_owner(
            partner,
            r.mchid.as_deref(),
            r.sp_mchid.as_deref(),
            r.sub_mchid.as_deref(),
            caller,
        )?;
        let appids = self.known_appids();
        let appid = if partner {
            r.sp_appid.as_deref()
        } else {
            r.appid.as_deref()
        };
        match appid {
            None => {
                return Err(param(if partner {
                    "缺少参数sp_appid"
                } else {
                    "缺少参数appid"
                }))
            }
            Some(a) if !appids.contains(&a) => {
                return Err(fail(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配"))
            }
            _ => {}
        }
        if partner {
            if let Some(sub_appid) = &r.sub_appid {
                let bound = r
                    .sub_mchid
                    .as_deref()
                    .and_then(|s| self.sub_merchant(s))
                    .and_then(|m| m.sub_appid.as_deref());
                if bound != Some(sub_appid.as_str()) {
                    return Err(fail(
                        400,
                        "APPID_MCHID_NOT_MATCH",
                        "sub_appid与sub_mchid不匹配",
                    ));
                }
            }
        } else if r.sub_appid.is_some() || r.sp_appid.is_some() {
            return Err(param("普通商户接口不接受sp_appid/sub_appid"));
        }
        if r.description.is_empty() || r.description.len() > 127 {
            return Err(param("description长度应为1-127字节"));
        }
        if !is_reference(&r.out_trade_no, 6, 32) {
            return Err(param("out_trade_no应为6-32位数字、大小写字母、_-|*@"));
        }
        if !valid_notify_url(&r.notify_url) {
            return Err(param(
                "notify_url格式错误 (absolute URL without query string)",
            ));
        }
        if r.amount.total <= 0 || r.amount.total > i32::MAX as i64 {
            return Err(param("amount.total应为正整数 (fen)"));
        }
        if r.amount.currency.as_deref().unwrap_or("CNY") != "CNY" {
            return Err(param("境内商户仅支持CNY"));
        }
        if let Some(t) = &r.time_expire {
            if parse_rfc3339(t).is_none() {
                return Err(param("time_expire格式错误 (RFC 3339)"));
            }
        }
        let openid = r.payer.as_ref().and_then(|p| {
            if partner {
                p.sub_openid.clone().or_else(|| p.sp_openid.clone())
            } else {
                p.openid.clone()
            }
        });
        if trade_type == "JSAPI" {
            if openid.as_deref().map_or(true, str::is_empty) {
                return Err(param(if partner {
                    "缺少参数payer.sp_openid或payer.sub_openid"
                } else {
                    "缺少参数payer.openid"
                }));
            }
            if partner
                && r.payer.as_ref().is_some_and(|p| p.sub_openid.is_some())
                && r.sub_appid.is_none()
            {
                return Err(param("使用sub_openid时sub_appid必填"));
            }
        }
        if trade_type == "MWEB" {
            let scene = r
                .scene_info
                .as_ref()
                .ok_or_else(|| param("缺少参数scene_info"))?;
            match scene.payer_client_ip.as_deref() {
                Some(ip) if ip.parse::<std::net::IpAddr>().is_ok() => {}
                _ => return Err(param("scene_info.payer_client_ip必填且应为合法IP")),
            }
            match scene.h5_info.as_ref().map(|h| h.kind.as_str()) {
                Some("Wap" | "iOS" | "Android") => {}
                _ => return Err(param("scene_info.h5_info.type必填 (Wap/iOS/Android)")),
            }
        }

        if let Some(existing) = self.load_trade(&r.out_trade_no).map_err(storage)? {
            if existing.is_paid() {
                return Err(fail(400, "ORDERPAID", "该订单已支付"));
            }
            if existing.state == "CLOSED" {
                return Err(fail(400, "ORDER_CLOSED", "订单已关闭"));
            }
            if existing.req != r || existing.trade_type != trade_type {
                return Err(fail(403, "OUT_TRADE_NO_USED", "商户订单号重复"));
            }
            // The same order placed again: WeChat answers the same thing.
            return json(200, &Self::prepay_answer(&existing));
        }

        let prepay_id = format!(
            "wx{}{}",
            format_cst(now_millis())
                .replace(['-', 'T', ':'], "")
                .get(0..14)
                .unwrap_or("0"),
            wire::random_alnum(18)
        );
        let trade = TradeRec {
            trade_type: trade_type.into(),
            code_url: (trade_type == "NATIVE")
                .then(|| format!("weixin://wxpay/bizpayurl?pr={}", wire::random_alnum(7))),
            h5_url: (trade_type == "MWEB").then(|| {
                format!(
                    "{}/sandbox/{}/checkout?prepay_id={prepay_id}&package={}",
                    self.env.public_url.trim_end_matches('/'),
                    self.env.channel,
                    wire::random_digits(10)
                )
            }),
            prepay_id,
            state: "NOTPAY".into(),
            transaction_id: None,
            success_time: None,
            paid_total: None,
            payer_openid: openid,
            refunded: 0,
            req: r,
        };
        self.save_trade(&trade).map_err(storage)?;
        self.env
            .state
            .put(
                &format!("prepay/{}", trade.prepay_id),
                &trade.req.out_trade_no,
            )
            .map_err(storage)?;
        json(200, &Self::prepay_answer(&trade))
    }

    fn prepay_answer(t: &TradeRec) -> PrepayResponse {
        match t.trade_type.as_str() {
            "NATIVE" => PrepayResponse {
                code_url: t.code_url.clone(),
                ..Default::default()
            },
            "MWEB" => PrepayResponse {
                h5_url: t.h5_url.clone(),
                ..Default::default()
            },
            _ => PrepayResponse {
                prepay_id: Some(t.prepay_id.clone()),
                ..Default::default()
            },
        }
    }

    fn query(&self, otn: &str, partner: bool, query: &str, caller: &str) -> Answer {
        let (mchid, sp, sub) = (
            query_param(query, "mchid"),
            query_param(query, "sp_mchid"),
            query_param(query, "sub_mchid"),
        );
        self.check_owner(
            partner,
            mchid.as_deref(),
            sp.as_deref(),
            sub.as_deref(),
            caller,
        )?;
        let owner = if partner {
            sp.as_deref()
        } else {
            mchid.as_deref()
        };
        let trade = self.trade_owned(otn, partner, owner, sub.as_deref())?;
        json(200, &trade.transaction())
    }

    fn close(&self, otn: &str, partner: bool, body: &[u8], caller: &str) -> Answer {
        let r: CloseRequest = serde_json::from_slice(body)
            .map_err(|e| param(format!("请求体不是合法的JSON: {e}")))?;
        self.check_owner(
            partner,
            r.mchid.as_deref(),
            r.sp_mchid.as_deref(),
            r.sub_mchid.as_deref(),
            caller,
        )?;
        let owner = if partner {
            r.sp_mchid.as_deref()
        } else {
            r.mchid.as_deref()
        };
        let mut trade = self.trade_owned(otn, partner, owner, r.sub_mchid.as_deref())?;
        if trade.is_paid() {
            return Err(fail(400, "ORDERPAID", "订单已支付，不能关闭"));
        }
        if trade.state == "CLOSED" {
            return Err(fail(400, "ORDER_CLOSED", "订单已关闭"));
        }
        trade.state = "CLOSED".into();
        self.save_trade(&trade).map_err(storage)?;
        Ok((204, String::new()))
    }

    fn refund(self: &Arc<Self>, body: &[u8], caller: &str) -> Answer {
        let r: RefundRequest = serde_json::from_slice(body)
            .map_err(|e| param(format!("请求体不是合法的JSON: {e}")))?;
        if !is_reference(&r.out_refund_no, 1, 64) {
            return Err(param("out_refund_no应为1-64位数字、大小写字母、_-|*@"));
        }
        if r.reason.as_ref().is_some_and(|x| x.chars().count() > 80) {
            return Err(param("reason不能超过80个字符"));
        }
        if let Some(u) = &r.notify_url {
            if !valid_notify_url(u) {
                return Err(param("notify_url格式错误"));
            }
        }
        if r.amount.refund <= 0 || r.amount.total <= 0 {
            return Err(param("amount.refund和amount.total应为正整数"));
        }
        if r.amount.currency != "CNY" {
            return Err(param("退款币种仅支持CNY"));
        }
        if let Some(sub) = &r.sub_mchid {
            if self.sub_merchant(sub).is_none() {
                return Err(fail(
                    400,
                    "MCH_NOT_EXISTS",
                    "子商户号不存在或与服务商无绑定关系",
                ));
            }
        }
        let otn = match (&r.out_trade_no, &r.transaction_id) {
            (Some(o), _) => o.clone(),
            (None, Some(t)) => self
                .env
                .state
                .get::<String>(&txid_key(t))
                .map_err(storage)?
                .ok_or_else(|| fail(404, "RESOURCE_NOT_EXISTS", "订单不存在"))?,
            (None, None) => return Err(param("transaction_id和out_trade_no必须二选一")),
        };
        let partner = r.sub_mchid.is_some();
        let trade = self
            .trade_owned(&otn, partner, Some(caller), r.sub_mchid.as_deref())
            .map_err(|_| fail(404, "RESOURCE_NOT_EXISTS", "订单不存在"))?;
        if !trade.is_paid() {
            return Err(fail(400, "INVALID_REQUEST", "订单未支付，不能退款"));
        }
        let paid = trade.paid_total.unwrap_or(trade.req.amount.total);
        if r.amount.total != paid {
            return Err(fail(
                400,
                "INVALID_REQUEST",
                "amount.total与原订单金额不一致",
            ));
        }

        let key = RefundRec::key(&r.out_refund_no);
        if let Some(existing) = self.env.state.get::<RefundRec>(&key).map_err(storage)? {
            let a = existing.record.amount.as_ref().map(|a| a.refund);
            if existing.record.out_trade_no.as_deref() != Some(otn.as_str())
                || a != Some(r.amount.refund)
            {
                return Err(fail(
                    400,
                    "INVALID_REQUEST",
                    "out_refund_no已用于另一笔退款",
                ));
            }
            return json(200, &existing.record);
        }

        // Reserve the amount on the trade atomically, so concurrent refunds cannot overdraw.
        let mut over = false;
        self.env
            .state
            .update::<TradeRec, _>(&TradeRec::key(&otn), |t| {
                t.map(|mut t| {
                    over = t.refunded + r.amount.refund > paid;
                    if !over {
                        t.refunded += r.amount.refund;
                        t.state = "REFUND".into();
                    }
                    t
                })
            })
            .map_err(storage)?;
        if over {
            return Err(fail(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额"));
        }
        let (mchid, sp_mchid) = if partner {
            (None, Some(caller.to_string()))
        } else {
            (Some(caller.to_string()), None)
        };
        let record = RefundRecord {
            mchid,
            sp_mchid,
            sub_mchid: r.sub_mchid.clone(),
            refund_id: Some(format!("50{}", wire::random_digits(27))),
            out_refund_no: r.out_refund_no.clone(),
            transaction_id: trade.transaction_id.clone(),
            out_trade_no: Some(otn),
            channel: Some("ORIGINAL".into()),
            user_received_account: Some("支付用户零钱".into()),
            success_time: None,
            create_time: Some(format_cst(now_millis())),
            status: Some("PROCESSING".into()),
            refund_status: None,
            funds_account: Some("AVAILABLE".into()),
            amount: Some(RefundAmount {
                total: paid,
                refund: r.amount.refund,
                payer_total: Some(paid),
                payer_refund: Some(r.amount.refund),
                currency: Some("CNY".into()),
            }),
        };
        let rec = RefundRec {
            record: record.clone(),
            notify_url: r
                .notify_url
                .clone()
                .unwrap_or_else(|| trade.req.notify_url.clone()),
        };
        self.env.state.put(&key, &rec).map_err(storage)?;
        // Answer PROCESSING now; the result arrives later as REFUND.SUCCESS.
        self.dispatch_refund_settlement(r.out_refund_no);
        json(200, &record)
    }

    fn refund_query(&self, orn: &str, query: &str, caller: &str) -> Answer {
        let sub = query_param(query, "sub_mchid");
        let rec: RefundRec = self
            .env
            .state
            .get(&RefundRec::key(orn))
            .map_err(storage)?
            .ok_or_else(|| fail(404, "RESOURCE_NOT_EXISTS", "退款单不存在"))?;
        let owner = rec
            .record
            .mchid
            .as_deref()
            .or(rec.record.sp_mchid.as_deref());
        if owner != Some(caller) || rec.record.sub_mchid != sub {
            return Err(fail(404, "RESOURCE_NOT_EXISTS", "退款单不存在"));
        }
        json(200, &rec.record)
    }
}
