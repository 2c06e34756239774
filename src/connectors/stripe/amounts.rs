//! Amounts as Stripe counts them (Stripe's "Supported currencies" and "Minimum and maximum
//! charge amounts" pages) and which payment method takes which currency.
//!
//! Stripe amounts are integers in the currency's smallest unit, and Stripe's idea of the
//! smallest unit is its own: its zero-decimal currencies (JPY, KRW, VND, …) are charged in
//! whole units, every other currency paygate settles here in hundredths. paygate's minor
//! units follow ISO 4217, so the two agree for every currency this channel accepts; the
//! table below states Stripe's side independently and `to_stripe` refuses any currency
//! where they would not, instead of charging a hundred times the price.

use crate::domain::{Currency, Method, Money};

use super::super::ConnectorError;

/// Stripe's zero-decimal currencies.
pub const ZERO_DECIMAL: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];

/// The largest amount Stripe takes: eight digits.
pub const MAX_AMOUNT: i64 = 99_999_999;

/// The smallest charge Stripe accepts, per currency, in that currency's smallest unit
/// (USD 0.50, GBP 0.30, HKD 4.00, JPY 50, MYR 2.00, THB 10.00, …). `None`: not offered
/// on this channel.
pub fn minimum(c: Currency) -> Option<i64> {
    Some(match c {
        Currency::Usd | Currency::Eur | Currency::Aud | Currency::Sgd | Currency::Inr => 50,
        Currency::Gbp => 30,
        Currency::Hkd => 400,
        Currency::Jpy => 50,
        Currency::Myr => 200,
        Currency::Thb => 1000,
        _ => return None,
    })
}

/// Every currency the channel charges in (the ones with a published minimum).
pub fn currencies() -> Vec<Currency> {
    Currency::ALL
        .into_iter()
        .filter(|c| minimum(*c).is_some())
        .collect()
}

/// Stripe's exponent for `c`.
fn stripe_exponent(code: &str) -> u32 {
    if ZERO_DECIMAL.contains(&code) {
        0
    } else {
        2
    }
}

/// `(amount, currency)` as sent to Stripe (currency lower case).
pub fn to_stripe(m: Money) -> Result<(i64, String), ConnectorError> {
    let code = m.currency().code();
    if stripe_exponent(code) != m.currency().exponent() {
        return Err(ConnectorError::Unsupported(format!(
            "Stripe counts {code} in other units than paygate"
        )));
    }
    Ok((m.minor(), code.to_ascii_lowercase()))
}

/// An amount Stripe reported, back to paygate's money.
pub fn from_stripe(amount: i64, currency: &str) -> Result<Money, ConnectorError> {
    let c: Currency = currency
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| ConnectorError::Protocol(format!("currency `{currency}`")))?;
    if stripe_exponent(c.code()) != c.exponent() {
        return Err(ConnectorError::Protocol(format!("currency `{currency}`")));
    }
    Money::new(amount, c).map_err(|e| ConnectorError::Protocol(format!("amount: {e}")))
}

/// How a wallet's payment is placed at Stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// A Checkout Session: Stripe's hosted page collects the card (or the FPX bank).
    Checkout,
    /// A PaymentIntent confirmed server-side; its `next_action` is the QR or the redirect.
    Intent,
}

/// One wallet of the channel: its Stripe payment method type, currencies and flow.
pub struct WalletRule {
    pub wallet: &'static str,
    pub currencies: &'static [Currency],
    pub flow: Flow,
    pub methods: &'static [Method],
}

use Currency::*;
const REDIRECT: &[Method] = &[Method::H5, Method::PcWeb];
const QR_OR_PAGE: &[Method] = &[Method::NativeQr, Method::H5, Method::PcWeb];
const CARD_CURRENCIES: &[Currency] = &[Usd, Eur, Gbp, Aud, Hkd, Jpy, Sgd, Myr, Thb, Inr];

/// The wallets, in the order `GET /v1/channels` lists them. Alipay and WeChat Pay depend
/// on the Stripe account's country; these are the currencies Stripe lists for them.
pub const WALLETS: &[WalletRule] = &[
    WalletRule {
        wallet: "card",
        currencies: CARD_CURRENCIES,
        flow: Flow::Checkout,
        methods: REDIRECT,
    },
    WalletRule {
        wallet: "alipay",
        currencies: &[Aud, Eur, Gbp, Hkd, Jpy, Sgd, Usd, Myr],
        flow: Flow::Intent,
        methods: REDIRECT,
    },
    WalletRule {
        wallet: "wechat_pay",
        currencies: &[Aud, Eur, Gbp, Hkd, Jpy, Sgd, Usd],
        flow: Flow::Intent,
        methods: QR_OR_PAGE,
    },
    WalletRule {
        wallet: "paynow",
        currencies: &[Sgd],
        flow: Flow::Intent,
        methods: QR_OR_PAGE,
    },
    WalletRule {
        wallet: "grabpay",
        currencies: &[Sgd, Myr],
        flow: Flow::Intent,
        methods: REDIRECT,
    },
    WalletRule {
        wallet: "fpx",
        currencies: &[Myr],
        flow: Flow::Checkout,
        methods: REDIRECT,
    },
    WalletRule {
        wallet: "promptpay",
        currencies: &[Thb],
        flow: Flow::Intent,
        methods: QR_OR_PAGE,
    },
];

pub fn wallet(name: &str) -> Option<&'static WalletRule> {
    WALLETS.iter().find(|w| w.wallet == name)
}

/// Checks an amount against Stripe's limits for its currency.
pub fn check_amount(m: Money) -> Result<(), ConnectorError> {
    let c = m.currency();
    let min = minimum(c).ok_or_else(|| {
        ConnectorError::Unsupported(format!("the Stripe channel does not charge in {c}"))
    })?;
    to_stripe(m)?;
    if m.minor() < min || m.minor() > MAX_AMOUNT {
        return Err(ConnectorError::InvalidRequest {
            param: "amount",
            message: format!(
                "Stripe charges {c} from {} to {} (amount_too_small / amount_too_large)",
                Money::new(min, c)
                    .map(|x| x.to_decimal_string())
                    .unwrap_or_default(),
                Money::new(MAX_AMOUNT, c)
                    .map(|x| x.to_decimal_string())
                    .unwrap_or_default(),
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(minor: i64, c: Currency) -> Money {
        Money::new(minor, c).unwrap()
    }

    #[test]
    fn zero_decimal_currencies_are_sent_in_whole_units() {
        assert_eq!(to_stripe(m(500, Jpy)).unwrap(), (500, "jpy".into()));
        assert_eq!(to_stripe(m(1050, Sgd)).unwrap(), (1050, "sgd".into()));
        assert_eq!(from_stripe(500, "jpy").unwrap(), m(500, Jpy));
        assert_eq!(from_stripe(1050, "SGD").unwrap(), m(1050, Sgd));
        assert!(from_stripe(1, "xyz").is_err());
        // Stripe and ISO 4217 agree on every currency paygate knows that Stripe lists.
        for c in Currency::ALL {
            assert_eq!(stripe_exponent(c.code()), c.exponent(), "{c}");
        }
    }

    #[test]
    fn per_currency_minimums_and_the_eight_digit_maximum() {
        assert!(check_amount(m(50, Usd)).is_ok());
        assert!(matches!(
            check_amount(m(49, Usd)),
            Err(ConnectorError::InvalidRequest {
                param: "amount",
                ..
            })
        ));
        assert!(check_amount(m(49, Jpy)).is_err());
        assert!(check_amount(m(50, Jpy)).is_ok());
        assert!(check_amount(m(199, Myr)).is_err());
        assert!(check_amount(m(999, Thb)).is_err());
        assert!(check_amount(m(29, Gbp)).is_err());
        assert!(check_amount(m(30, Gbp)).is_ok());
        assert!(check_amount(m(MAX_AMOUNT + 1, Sgd)).is_err());
        assert!(matches!(
            check_amount(m(5000, Cny)),
            Err(ConnectorError::Unsupported(_))
        ));
    }

    #[test]
    fn every_wallet_currency_is_a_channel_currency() {
        let all = currencies();
        for w in WALLETS {
            assert!(crate::domain::WALLETS.contains(&w.wallet), "{}", w.wallet);
            for c in w.currencies {
                assert!(all.contains(c), "{} {c}", w.wallet);
            }
        }
    }
}
