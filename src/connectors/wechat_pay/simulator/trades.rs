//! Prepay (all four kinds, direct and partner), query and close.

use super::api::{CloseRequest, PrepayAnswer, PrepayRequest};
use super::routes::{
    body_json, fail, is_reference, json, param, query_param, storage, valid_notify_url, Answer,
};
use super::state::TradeRec;
use super::{wire, WechatPaySimulator};
use crate::protocol_primitives::beijing_time::{
    format_rfc3339_cst as format_cst, now_millis, parse_rfc3339,
};

impl WechatPaySimulator {
    pub(super) fn prepay(&self, kind: &str, partner: bool, body: &[u8], caller: &str) -> Answer {
        let trade_type = match kind {
            "jsapi" => "JSAPI",
            "app" => "APP",
            "h5" => "MWEB",
            "native" => "NATIVE",
            _ => return Err(fail(404, "NOT_FOUND", "no such API")),
        };
        let r: PrepayRequest = body_json(body)?;
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
                    .is_some_and(|m| m.appids().any(|a| a == sub_appid));
                if !bound {
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

    fn prepay_answer(t: &TradeRec) -> PrepayAnswer {
        match t.trade_type.as_str() {
            "NATIVE" => PrepayAnswer {
                code_url: t.code_url.clone(),
                ..Default::default()
            },
            "MWEB" => PrepayAnswer {
                h5_url: t.h5_url.clone(),
                ..Default::default()
            },
            _ => PrepayAnswer {
                prepay_id: Some(t.prepay_id.clone()),
                ..Default::default()
            },
        }
    }

    pub(super) fn query(&self, otn: &str, partner: bool, query: &str, caller: &str) -> Answer {
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

    pub(super) fn close(&self, otn: &str, partner: bool, body: &[u8], caller: &str) -> Answer {
        let r: CloseRequest = body_json(body)?;
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
}
