//! What the simulated WeChat Pay remembers, in the simulator's own `KvTree` (JSON), so a
//! restart of paygate does not make the provider forget its trades.

use serde::{Deserialize, Serialize};

use super::api::{Payer, PrepayRequest, RefundRecord, Transaction, TransactionAmount};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TradeRec {
    /// The prepay request as placed (appid/mchid or the partner set, notify_url, ...).
    pub req: PrepayRequest,
    /// `JSAPI`, `APP`, `MWEB` (H5) or `NATIVE`.
    pub trade_type: String,
    pub prepay_id: String,
    pub code_url: Option<String>,
    pub h5_url: Option<String>,
    /// `NOTPAY`, `SUCCESS`, `REFUND` or `CLOSED`.
    pub state: String,
    pub transaction_id: Option<String>,
    pub success_time: Option<String>,
    pub paid_total: Option<i64>,
    pub payer_openid: Option<String>,
    /// Sum of accepted refunds, in fen.
    pub refunded: i64,
}

impl TradeRec {
    pub fn key(out_trade_no: &str) -> String {
        format!("trade/{out_trade_no}")
    }

    pub fn is_paid(&self) -> bool {
        matches!(self.state.as_str(), "SUCCESS" | "REFUND")
    }

    /// The merchant that placed the trade: `mchid`, or `sp_mchid` + `sub_mchid`.
    pub fn owner(&self) -> (Option<&str>, Option<&str>) {
        match &self.req.sp_mchid {
            Some(sp) => (Some(sp.as_str()), self.req.sub_mchid.as_deref()),
            None => (self.req.mchid.as_deref(), None),
        }
    }

    pub fn transaction(&self) -> Transaction {
        let r = &self.req;
        let paid = self.is_paid();
        let total = self.paid_total.unwrap_or(r.amount.total);
        let desc = match self.state.as_str() {
            "SUCCESS" => "支付成功",
            "REFUND" => "转入退款",
            "CLOSED" => "订单已关闭",
            _ => "订单未支付",
        };
        let payer = paid.then(|| match (&r.sp_mchid, &r.sub_appid) {
            (None, _) => Payer {
                openid: self.payer_openid.clone(),
                ..Default::default()
            },
            (Some(_), Some(_)) => Payer {
                sub_openid: self.payer_openid.clone(),
                ..Default::default()
            },
            (Some(_), None) => Payer {
                sp_openid: self.payer_openid.clone(),
                ..Default::default()
            },
        });
        Transaction {
            appid: r.appid.clone(),
            mchid: r.mchid.clone(),
            sp_appid: r.sp_appid.clone(),
            sp_mchid: r.sp_mchid.clone(),
            sub_appid: r.sub_appid.clone(),
            sub_mchid: r.sub_mchid.clone(),
            out_trade_no: r.out_trade_no.clone(),
            transaction_id: self.transaction_id.clone(),
            trade_type: self.trade_type.clone(),
            trade_state: self.state.clone(),
            trade_state_desc: desc.into(),
            bank_type: paid.then(|| "OTHERS".into()),
            attach: r.attach.clone(),
            success_time: self.success_time.clone(),
            payer,
            amount: TransactionAmount {
                total,
                payer_total: paid.then_some(total),
                currency: "CNY".into(),
                payer_currency: "CNY".into(),
            },
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefundRec {
    /// As answered by create/query (`status`), owner fields filled.
    pub record: RefundRecord,
    pub notify_url: String,
    /// Unix ms; a refund still `PROCESSING` long after is settled by a query
    /// (`simulator::refund_orphaned`).
    #[serde(default)]
    pub accepted_at: i64,
}

impl RefundRec {
    pub fn key(out_refund_no: &str) -> String {
        format!("refund/{out_refund_no}")
    }
}

pub fn txid_key(transaction_id: &str) -> String {
    format!("txid/{transaction_id}")
}
