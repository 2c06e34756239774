//! Refunds: answered `PROCESSING` at once, settled and notified (`REFUND.SUCCESS`) after.

use std::sync::Arc;

use super::api::{RefundAmount, RefundRecord, RefundRequest};
use super::routes::{
    body_json, fail, is_reference, json, param, query_param, storage, valid_notify_url, Answer,
};
use super::state::{txid_key, RefundRec, TradeRec};
use super::{wire, WechatPaySimulator};
use crate::protocol_primitives::beijing_time::{format_rfc3339_cst as format_cst, now_millis};
use crate::simulator::faults::take_one;
use crate::simulator::{refund_accepted_at, refund_orphaned};

impl WechatPaySimulator {
    pub(super) fn refund(self: &Arc<Self>, body: &[u8], caller: &str) -> Answer {
        let r: RefundRequest = body_json(body)?;
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
            funds_account: Some(
                r.funds_account
                    .clone()
                    .unwrap_or_else(|| "AVAILABLE".into()),
            ),
            amount: Some(RefundAmount {
                total: paid,
                refund: r.amount.refund,
                payer_total: Some(paid),
                payer_refund: Some(r.amount.refund),
                currency: Some("CNY".into()),
            }),
        };
        let orphan = take_one(&self.orphan_refunds);
        let rec = RefundRec {
            record: record.clone(),
            notify_url: r
                .notify_url
                .clone()
                .unwrap_or_else(|| trade.req.notify_url.clone()),
            accepted_at: refund_accepted_at(now_millis(), orphan),
        };
        self.env.state.put(&key, &rec).map_err(storage)?;
        // Answer PROCESSING now; the result arrives later as REFUND.SUCCESS.
        if !orphan {
            self.dispatch_refund_settlement(r.out_refund_no);
        }
        json(200, &record)
    }

    pub(super) fn refund_query(self: &Arc<Self>, orn: &str, query: &str, caller: &str) -> Answer {
        let sub = query_param(query, "sub_mchid");
        let mut rec: RefundRec = self
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
        if rec.record.status.as_deref() == Some("PROCESSING")
            && refund_orphaned(rec.accepted_at, now_millis())
        {
            // Whoever settles it (this query or a late task) notifies.
            if let Some(settled) = self.settle_refund_now(orn, false) {
                rec = settled.clone();
                let me = Arc::clone(self);
                actix_web::rt::spawn(me.notify_refund(settled, false));
            } else if let Ok(Some(latest)) = self.env.state.get::<RefundRec>(&RefundRec::key(orn)) {
                rec = latest;
            }
        }
        json(200, &rec.record)
    }
}
