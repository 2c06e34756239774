//! The payment methods paygate offers through Antom: the `wallet` name merchants send,
//! Antom's `paymentMethodType` for each currency the method settles in, the countries it
//! serves, and whether Antom answers a QR code (`orderCodeForm.codeDetails[].codeValue`)
//! for it. Codes as in Antom's `WalletPaymentMethodType` list of the official SDKs.

use crate::domain::{Currency, Method};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AntomWallet {
    /// paygate's API name (`domain::wallet::WALLETS`).
    pub name: &'static str,
    /// `(currency, paymentMethodType, country)`: one entry per market the method serves.
    pub markets: &'static [(Currency, &'static str, &'static str)],
    /// Whether a `native_qr` payment is offered (Antom answers a code to scan).
    pub qr: bool,
    /// Whether the method has an app to open (`app`); bank redirects (FPX) have none.
    pub app: bool,
}

impl AntomWallet {
    /// Antom's `paymentMethodType` for a payment in `currency`, `None` when this method
    /// does not settle in it.
    pub fn method_type(&self, currency: Currency) -> Option<&'static str> {
        self.markets
            .iter()
            .find(|(c, _, _)| *c == currency)
            .map(|(_, t, _)| *t)
    }

    pub fn currencies(&self) -> impl Iterator<Item = Currency> + '_ {
        self.markets.iter().map(|(c, _, _)| *c)
    }

    /// The paygate methods this wallet can be paid with.
    pub fn methods(&self) -> Vec<Method> {
        let mut m = vec![Method::H5, Method::PcWeb];
        if self.app {
            m.push(Method::App);
        }
        if self.qr {
            m.push(Method::NativeQr);
        }
        m
    }
}

use Currency::*;

const fn w(
    name: &'static str,
    markets: &'static [(Currency, &'static str, &'static str)],
    qr: bool,
    app: bool,
) -> AntomWallet {
    AntomWallet {
        name,
        markets,
        qr,
        app,
    }
}

/// Every method of the channel, in the order `GET /v1/channels` lists them.
pub const WALLETS: &[AntomWallet] = &[
    w("tng", &[(Myr, "TNG", "MY")], false, true),
    w("boost", &[(Myr, "BOOST", "MY")], false, true),
    w(
        "grabpay",
        &[
            (Myr, "GRABPAY_MY", "MY"),
            (Sgd, "GRABPAY_SG", "SG"),
            (Php, "GRABPAY_PH", "PH"),
        ],
        false,
        true,
    ),
    w("shopeepay", &[(Myr, "SHOPEEPAY_MY", "MY")], false, true),
    w("fpx", &[(Myr, "ONLINEBANKING_FPX", "MY")], false, false),
    w("paynow", &[(Sgd, "PAYNOW", "SG")], true, false),
    w("gcash", &[(Php, "GCASH", "PH")], false, true),
    w("maya", &[(Php, "MAYA", "PH")], false, true),
    w("dana", &[(Idr, "DANA", "ID")], false, true),
    w("ovo", &[(Idr, "OVO", "ID")], false, true),
    w("kakaopay", &[(Krw, "KAKAOPAY", "KR")], false, true),
    w("naverpay", &[(Krw, "NAVERPAY", "KR")], false, true),
    w("tosspay", &[(Krw, "TOSSPAY", "KR")], false, true),
    w("truemoney", &[(Thb, "TRUEMONEY", "TH")], false, true),
    w(
        "rabbit_line_pay",
        &[(Thb, "RABBIT_LINE_PAY", "TH")],
        false,
        true,
    ),
    w("promptpay", &[(Thb, "PROMPTPAY", "TH")], true, false),
    w("alipay_hk", &[(Hkd, "ALIPAY_HK", "HK")], true, true),
    w("alipay_cn", &[(Cny, "ALIPAY_CN", "CN")], true, true),
];

pub fn find(name: &str) -> Option<&'static AntomWallet> {
    WALLETS.iter().find(|w| w.name == name)
}

/// Antom's rule for Indonesian rupiah: values are whole rupiah (minor units ending in 00).
pub fn whole_units_only(currency: Currency) -> bool {
    currency == Idr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wallet_is_a_known_paygate_wallet_with_distinct_codes() {
        let mut codes = std::collections::HashSet::new();
        for w in WALLETS {
            crate::domain::Wallet::parse(w.name).unwrap();
            assert!(!w.markets.is_empty(), "{}", w.name);
            for (_, code, _) in w.markets {
                assert!(codes.insert(*code), "{code} twice");
            }
        }
    }

    #[test]
    fn grabpay_picks_its_market_by_currency() {
        let g = find("grabpay").unwrap();
        assert_eq!(g.method_type(Myr), Some("GRABPAY_MY"));
        assert_eq!(g.method_type(Sgd), Some("GRABPAY_SG"));
        assert_eq!(g.method_type(Php), Some("GRABPAY_PH"));
        assert_eq!(g.method_type(Thb), None);
    }
}
