//! The payment method inside an aggregator channel (`wallet` on an order): which e-wallet,
//! bank rail or card scheme the payer uses when one channel reaches many (Antom, Stripe,
//! a local aggregator). Single-wallet channels (WeChat Pay, Alipay, UnionPay) take none.
//! A closed list, so a typo is a clear 400 and not a provider error after the order exists.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::DomainError;

/// Every wallet paygate knows, by its API name.
pub const WALLETS: &[&str] = &[
    "tng",
    "boost",
    "grabpay",
    "shopeepay",
    "fpx",
    "paynow",
    "duitnow",
    "gcash",
    "maya",
    "dana",
    "ovo",
    "kakaopay",
    "naverpay",
    "tosspay",
    "truemoney",
    "rabbit_line_pay",
    "promptpay",
    "alipay_hk",
    "alipay_cn",
    "alipay",
    "wechat_pay",
    "card",
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Wallet(String);

impl Wallet {
    pub fn parse(s: &str) -> Result<Wallet, DomainError> {
        if WALLETS.contains(&s) {
            Ok(Wallet(s.to_string()))
        } else {
            Err(DomainError::UnknownWallet(s.chars().take(32).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_wallets_parse() {
        for w in WALLETS {
            assert_eq!(Wallet::parse(w).unwrap().as_str(), *w);
        }
        for bad in ["", "TNG", "paypal", "tng ", "alipay-hk"] {
            assert!(Wallet::parse(bad).is_err(), "{bad}");
        }
    }
}
