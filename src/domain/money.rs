//! Money is an integer count of a currency's minor units. Floating point never touches an
//! amount: providers that want decimal strings get them from [`Money::to_decimal_string`].

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::DomainError;

/// The largest amount accepted in minor units. Far above any real payment, far below
/// `i64::MAX`, so sums of refunds cannot overflow.
pub const MAX_MINOR_UNITS: i64 = 1_000_000_000_000_000;

/// ISO 4217 currencies paygate's channels can settle in, with their minor-unit exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Currency {
    Cny,
    Hkd,
    Sgd,
    Myr,
    Thb,
    Idr,
    Php,
    Vnd,
    Usd,
    Eur,
    Gbp,
    Jpy,
    Krw,
    Twd,
    Aud,
    Inr,
}

impl Currency {
    pub const ALL: [Currency; 16] = [
        Currency::Cny,
        Currency::Hkd,
        Currency::Sgd,
        Currency::Myr,
        Currency::Thb,
        Currency::Idr,
        Currency::Php,
        Currency::Vnd,
        Currency::Usd,
        Currency::Eur,
        Currency::Gbp,
        Currency::Jpy,
        Currency::Krw,
        Currency::Twd,
        Currency::Aud,
        Currency::Inr,
    ];

    /// ISO 4217 alphabetic code.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Cny => "CNY",
            Currency::Hkd => "HKD",
            Currency::Sgd => "SGD",
            Currency::Myr => "MYR",
            Currency::Thb => "THB",
            Currency::Idr => "IDR",
            Currency::Php => "PHP",
            Currency::Vnd => "VND",
            Currency::Usd => "USD",
            Currency::Eur => "EUR",
            Currency::Gbp => "GBP",
            Currency::Jpy => "JPY",
            Currency::Krw => "KRW",
            Currency::Twd => "TWD",
            Currency::Aud => "AUD",
            Currency::Inr => "INR",
        }
    }

    /// Number of decimal places of the minor unit (ISO 4217). IDR keeps its ISO exponent
    /// of 2 even though most wallets display it without decimals.
    pub fn exponent(self) -> u32 {
        match self {
            Currency::Jpy | Currency::Krw | Currency::Vnd => 0,
            _ => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = DomainError;

    /// Only upper-case codes are accepted: `cny` is as wrong on the wire as `CNX`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::ALL
            .into_iter()
            .find(|c| c.code() == s)
            .ok_or_else(|| DomainError::UnknownCurrency(s.chars().take(8).collect()))
    }
}

/// A positive amount of one currency, in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// A payable amount: strictly positive and at most [`MAX_MINOR_UNITS`].
    pub fn new(minor: i64, currency: Currency) -> Result<Self, DomainError> {
        if minor <= 0 {
            return Err(DomainError::NonPositiveAmount(minor));
        }
        if minor > MAX_MINOR_UNITS {
            return Err(DomainError::AmountTooLarge(minor));
        }
        Ok(Money { minor, currency })
    }

    pub fn minor(&self) -> i64 {
        self.minor
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The amount as a decimal string with exactly the currency's exponent of decimals
    /// (`1234 CNY` → `"12.34"`, `500 JPY` → `"500"`), as Alipay and others expect.
    pub fn to_decimal_string(&self) -> String {
        let exp = self.currency.exponent();
        if exp == 0 {
            return self.minor.to_string();
        }
        let scale = 10i64.pow(exp);
        format!(
            "{}.{:0width$}",
            self.minor / scale,
            self.minor % scale,
            width = exp as usize
        )
    }

    /// Parses a provider's decimal string (`"12.34"`) back into minor units, exactly.
    /// Rejects more decimals than the currency has, signs, exponents and empty parts.
    pub fn from_decimal_str(s: &str, currency: Currency) -> Result<Self, DomainError> {
        let bad = || DomainError::BadDecimal(s.chars().take(32).collect());
        let exp = currency.exponent() as usize;
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        if int.is_empty()
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > exp
            || (s.contains('.') && frac.is_empty())
            || int.len() > 16
        {
            return Err(bad());
        }
        let int: i64 = int.parse().map_err(|_| bad())?;
        let mut frac_val: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| bad())?
        };
        for _ in frac.len()..exp {
            frac_val *= 10;
        }
        let minor = int
            .checked_mul(10i64.pow(exp as u32))
            .and_then(|v| v.checked_add(frac_val))
            .ok_or_else(bad)?;
        Money::new(minor, currency)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn currency_codes_round_trip_and_reject_lower_case() {
        for c in Currency::ALL {
            assert_eq!(c.code().parse::<Currency>().unwrap(), c);
        }
        assert!("cny".parse::<Currency>().is_err());
        assert!("XXX".parse::<Currency>().is_err());
    }

    #[test]
    fn zero_decimal_currencies_have_exponent_zero() {
        assert_eq!(Currency::Jpy.exponent(), 0);
        assert_eq!(Currency::Krw.exponent(), 0);
        assert_eq!(Currency::Vnd.exponent(), 0);
        assert_eq!(Currency::Cny.exponent(), 2);
        assert_eq!(Currency::Idr.exponent(), 2);
    }

    #[test]
    fn amounts_must_be_positive_and_bounded() {
        assert!(Money::new(0, Currency::Cny).is_err());
        assert!(Money::new(-1, Currency::Cny).is_err());
        assert!(Money::new(MAX_MINOR_UNITS + 1, Currency::Cny).is_err());
        assert!(Money::new(1, Currency::Cny).is_ok());
    }

    #[test]
    fn decimal_strings() {
        let m = |v, c| Money::new(v, c).unwrap();
        assert_eq!(m(1, Currency::Cny).to_decimal_string(), "0.01");
        assert_eq!(m(1234, Currency::Cny).to_decimal_string(), "12.34");
        assert_eq!(m(100, Currency::Sgd).to_decimal_string(), "1.00");
        assert_eq!(m(500, Currency::Jpy).to_decimal_string(), "500");
        assert_eq!(
            Money::from_decimal_str("12.3", Currency::Cny).unwrap(),
            m(1230, Currency::Cny)
        );
        assert_eq!(
            Money::from_decimal_str("88", Currency::Cny).unwrap(),
            m(8800, Currency::Cny)
        );
        for bad in ["", ".5", "1.", "1.234", "-1", "+1", "1e3", "0.00", " 1"] {
            assert!(
                Money::from_decimal_str(bad, Currency::Cny).is_err(),
                "{bad}"
            );
        }
        assert!(Money::from_decimal_str("1.5", Currency::Jpy).is_err());
    }

    proptest! {
        #[test]
        fn decimal_round_trip(minor in 1i64..MAX_MINOR_UNITS, idx in 0usize..Currency::ALL.len()) {
            let c = Currency::ALL[idx];
            let m = Money::new(minor, c).unwrap();
            prop_assert_eq!(Money::from_decimal_str(&m.to_decimal_string(), c).unwrap(), m);
        }

        #[test]
        fn decimal_parser_never_panics(s in "\\PC{0,24}") {
            let _ = Money::from_decimal_str(&s, Currency::Cny);
        }
    }
}
