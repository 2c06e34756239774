//! The four gateway endpoints: what UnionPay checks on every request, then each
//! transaction's own rules.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use super::protocol::{self, amount, is_order_id, is_txn_time, Msg};
use super::{Txn, UnionPaySimulator, APP, BACK, FRONT, QUERY};
use crate::simulator::faults::take_one;

/// A refusal: the respCode and what is wrong.
struct Refusal(&'static str, String);

fn refuse(code: &'static str, why: impl Into<String>) -> Refusal {
    Refusal(code, why.into())
}

const COMMON: &[&str] = &[
    "version",
    "encoding",
    "signMethod",
    "accessType",
    "merId",
    "certId",
    "txnType",
    "txnSubType",
    "bizType",
    "orderId",
    "txnTime",
    "signature",
];

fn field<'a>(m: &'a Msg, k: &str) -> &'a str {
    m.get(k).map(String::as_str).unwrap_or("")
}

fn need(m: &Msg, keys: &[&str]) -> Result<(), Refusal> {
    match keys.iter().find(|k| field(m, k).is_empty()) {
        Some(k) => Err(refuse("13", format!("{k} is required"))),
        None => Ok(()),
    }
}

impl UnionPaySimulator {
    pub(super) fn gateway(self: &Arc<Self>, path: &str, body: &[u8]) -> HttpResponse {
        let endpoint = [FRONT, APP, BACK, QUERY]
            .into_iter()
            .find(|e| path.ends_with(e))
            .unwrap_or(BACK);
        let Some(req) = protocol::form_decode(body) else {
            return self.refusal(endpoint, &Msg::new(), refuse("10", "malformed form body"));
        };
        let result = self.authenticate(&req).and_then(|()| match endpoint {
            FRONT => self.front(&req),
            APP => self.consume(&req, false),
            QUERY => self.query(&req),
            _ => self.back(&req),
        });
        match result {
            Ok(answer) if endpoint == FRONT => self.cashier_page(field(&answer, "orderId")),
            Ok(answer) => text(protocol::answer_text(&answer)),
            Err(r) => self.refusal(endpoint, &req, r),
        }
    }

    fn refusal(&self, endpoint: &str, req: &Msg, Refusal(code, why): Refusal) -> HttpResponse {
        if endpoint == FRONT {
            return super::pages::error_page(code, &why);
        }
        let mut m = Msg::new();
        for k in [
            "version",
            "encoding",
            "accessType",
            "merId",
            "orderId",
            "txnTime",
            "txnType",
            "txnSubType",
            "bizType",
        ] {
            if !field(req, k).is_empty() {
                m.insert(k.into(), field(req, k).into());
            }
        }
        m.insert("signMethod".into(), "01".into());
        m.insert("respCode".into(), code.into());
        m.insert(
            "respMsg".into(),
            format!("{}: {why}", super::resp_msg(code)),
        );
        protocol::sign(&mut m, &self.s.sign_key, &self.s.sign_cert);
        text(protocol::answer_text(&m))
    }

    /// Protocol version, merchant, certificate id and signature.
    fn authenticate(&self, m: &Msg) -> Result<(), Refusal> {
        need(m, COMMON)?;
        if field(m, "version") != "5.1.0" || !field(m, "encoding").eq_ignore_ascii_case("utf-8") {
            return Err(refuse("10", "version 5.1.0 with encoding utf-8 expected"));
        }
        if field(m, "signMethod") != "01" {
            return Err(refuse("10", "signMethod must be 01"));
        }
        if field(m, "merId") != self.s.mer_id {
            return Err(refuse("31", "unknown merId"));
        }
        if field(m, "certId") != self.s.merchant_cert_id {
            return Err(refuse(
                "11",
                "certId is not the merchant's registered certificate",
            ));
        }
        if !protocol::merchant_signature_ok(m, &self.s.merchant_key) {
            return Err(refuse("11", "signature does not verify"));
        }
        if !is_order_id(field(m, "orderId")) || !is_txn_time(field(m, "txnTime")) {
            return Err(refuse(
                "10",
                "orderId (8-40 letters, digits) or txnTime malformed",
            ));
        }
        Ok(())
    }

    fn front(self: &Arc<Self>, m: &Msg) -> Result<Msg, Refusal> {
        if (field(m, "txnType"), field(m, "txnSubType")) != ("01", "01") {
            return Err(refuse("10", "frontTransReq.do takes consumes (01/01)"));
        }
        need(m, &["frontUrl"])?;
        self.consume(m, true)
    }

    /// A consume (01): browser, app, merchant QR (07) or payer code (06).
    fn consume(self: &Arc<Self>, m: &Msg, front: bool) -> Result<Msg, Refusal> {
        need(m, &["txnAmt", "currencyCode", "backUrl", "channelType"])?;
        if field(m, "txnType") != "01" {
            return Err(refuse("10", "txnType 01 expected"));
        }
        let amt = amount(field(m, "txnAmt"))
            .ok_or_else(|| refuse("10", "txnAmt must be 1-12 digits of fen"))?;
        if field(m, "currencyCode") != "156" {
            return Err(refuse("10", "currencyCode must be 156"));
        }
        let sub = field(m, "txnSubType");
        let timeout = field(m, "payTimeout");
        if !timeout.is_empty() && !is_txn_time(timeout) {
            return Err(refuse("10", "payTimeout must be YYYYMMDDhhmmss"));
        }
        let qr_no = field(m, "qrNo");
        if sub == "06"
            && (qr_no.len() != 19
                || !qr_no.starts_with("62")
                || !qr_no.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(refuse("60", "qrNo is not a valid payer code"));
        }
        let mut t = Txn {
            order_id: field(m, "orderId").into(),
            txn_time: field(m, "txnTime").into(),
            txn_type: "01".into(),
            sub_type: sub.into(),
            biz_type: field(m, "bizType").into(),
            channel_type: field(m, "channelType").into(),
            amount: amt,
            query_id: Self::new_query_id(),
            result: "05".into(),
            back_url: field(m, "backUrl").into(),
            front_url: field(m, "frontUrl").into(),
            pay_timeout: field(m, "payTimeout").into(),
            orig_qry_id: String::new(),
            paid: None,
            refunded: 0,
            undone: false,
            accepted_at: 0,
        };
        let pays_now = sub == "06" && !qr_no.starts_with("6299");
        if pays_now {
            t.result = "00".into();
            t.paid = Some(amt);
        }
        let fresh = {
            let _g = self.lock.lock();
            match self
                .load(&t.order_id)
                .map_err(|e| refuse("60", e.to_string()))?
            {
                // The same request again (the merchant lost our answer): the same answer.
                Some(prev)
                    if (&prev.txn_time, prev.amount, &prev.sub_type)
                        == (&t.txn_time, t.amount, &t.sub_type) =>
                {
                    t = prev;
                    false
                }
                Some(_) => return Err(refuse("12", "orderId already used")),
                None => {
                    self.save(&t).map_err(|e| refuse("60", e.to_string()))?;
                    true
                }
            }
        };
        if pays_now && fresh {
            self.notify_later(t.order_id.clone());
        }
        let extra = match sub {
            "07" => vec![("qrCode", format!("{}/qr/{}", self.prefix(), t.order_id))],
            "01" if !front => {
                let tn: String = t.query_id.chars().rev().collect();
                vec![("tn", tn)]
            }
            _ => vec![],
        };
        Ok(self.message(&t, "00", &extra))
    }

    fn back(self: &Arc<Self>, m: &Msg) -> Result<Msg, Refusal> {
        match (field(m, "txnType"), field(m, "txnSubType")) {
            ("01", "06" | "07") => self.consume(m, false),
            ("04", "00") => self.after_consume(m, true),
            ("31", "00") => self.after_consume(m, false),
            _ => Err(refuse(
                "10",
                "transaction type not offered on backTransReq.do",
            )),
        }
    }

    /// A refund (04) or an undo (31) of a paid consume named by `origQryId`.
    fn after_consume(self: &Arc<Self>, m: &Msg, refund: bool) -> Result<Msg, Refusal> {
        need(m, &["txnAmt", "origQryId", "backUrl"])?;
        let amt = amount(field(m, "txnAmt"))
            .ok_or_else(|| refuse("10", "txnAmt must be 1-12 digits of fen"))?;
        if refund && field(m, "currencyCode") != "156" {
            return Err(refuse("10", "currencyCode must be 156"));
        }
        let store = |e: crate::simulator::SimError| refuse("60", e.to_string());
        let _g = self.lock.lock();
        if self.load(field(m, "orderId")).map_err(store)?.is_some() {
            return Err(refuse("12", "orderId already used"));
        }
        let mut orig = self
            .load_by_query_id(field(m, "origQryId"))
            .map_err(store)?
            .filter(|o| o.txn_type == "01" && !o.undone)
            .ok_or_else(|| refuse("35", "no consume with this origQryId"))?;
        // A payer code still waiting for the payer can be cancelled: nothing was charged,
        // so the undo is done at once and there is nothing to notify.
        let cancel = !refund && orig.sub_type == "06" && orig.result == "05";
        if orig.result != "00" && !cancel {
            return Err(refuse("35", "the original consume is not paid"));
        }
        let paid = orig.paid.unwrap_or(orig.amount);
        if refund {
            if amt > paid - orig.refunded {
                return Err(refuse("36", "txnAmt exceeds what is left to refund"));
            }
            orig.refunded += amt;
        } else {
            if !cancel && orig.txn_time[..8] != protocol::now_txn_time()[..8] {
                return Err(refuse("35", "only a consume of today can be undone"));
            }
            if amt != paid || orig.refunded > 0 {
                return Err(refuse("36", "an undo is of the whole, unrefunded amount"));
            }
            orig.undone = true;
        }
        let mut t = Txn {
            order_id: field(m, "orderId").into(),
            txn_time: field(m, "txnTime").into(),
            txn_type: field(m, "txnType").into(),
            sub_type: "00".into(),
            biz_type: field(m, "bizType").into(),
            channel_type: field(m, "channelType").into(),
            amount: amt,
            query_id: Self::new_query_id(),
            result: "05".into(),
            back_url: field(m, "backUrl").into(),
            front_url: String::new(),
            pay_timeout: String::new(),
            orig_qry_id: orig.query_id.clone(),
            paid: None,
            refunded: 0,
            undone: false,
            accepted_at: 0,
        };
        let orphan = !cancel && take_one(&self.orphan_refunds);
        t.accepted_at = crate::simulator::refund_accepted_at(
            crate::protocol_primitives::beijing_time::now_millis(),
            orphan,
        );
        if cancel {
            t.result = "00".into();
        }
        self.save(&orig)
            .and_then(|_| self.save(&t))
            .map_err(store)?;
        if !cancel && !orphan {
            // `fail_next_refund` declines the next money-moving refund or undo.
            let result = if self.take_declined_refund() {
                "60"
            } else {
                "00"
            };
            self.finish_later(t.order_id.clone(), result);
        }
        Ok(self.message(
            &t,
            "00",
            &[("txnAmt", amt.to_string()), ("origQryId", orig.query_id)],
        ))
    }

    /// queryTrans.do: the transaction `orderId` placed at `txnTime`.
    fn query(self: &Arc<Self>, m: &Msg) -> Result<Msg, Refusal> {
        if (field(m, "txnType"), field(m, "txnSubType")) != ("00", "00") {
            return Err(refuse("10", "queryTrans.do takes txnType 00/00"));
        }
        let mut t = self
            .load(field(m, "orderId"))
            .map_err(|e| refuse("60", e.to_string()))?
            .filter(|t| t.txn_time == field(m, "txnTime"))
            .ok_or_else(|| refuse("34", "no such transaction"))?;
        if let Some(settled) = self.settle_if_orphaned(&t) {
            t = settled;
        }
        let amount = t.paid.unwrap_or(t.amount).to_string();
        Ok(self.message(
            &t,
            "00",
            &[
                ("origRespCode", t.result.clone()),
                ("origRespMsg", super::resp_msg(&t.result).into()),
                ("txnAmt", amount.clone()),
                ("currencyCode", "156".into()),
                ("settleAmt", amount),
                ("origQryId", t.orig_qry_id.clone()),
            ],
        ))
    }
}

fn text(body: String) -> HttpResponse {
    HttpResponse::build(StatusCode::OK)
        .content_type("text/plain;charset=UTF-8")
        .body(body)
}
