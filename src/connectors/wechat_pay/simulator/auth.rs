//! Reading a merchant request's `Authorization` header the way WeChat documents it:
//! `WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",signature="…",timestamp="…",serial_no="…"`,
//! the five parameters in any order, each value in double quotes.

use super::wire::SIGNATURE_TYPE;

/// Replay window of merchant requests: WeChat refuses a `timestamp` five minutes or more
/// away from its clock.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub mchid: String,
    pub nonce_str: String,
    pub timestamp: String,
    pub serial_no: String,
    pub signature: String,
}

impl Authorization {
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let (scheme, params) = value
            .trim()
            .split_once(' ')
            .ok_or("expected `WECHATPAY2-SHA256-RSA2048 k=\"v\",...`")?;
        if scheme != SIGNATURE_TYPE {
            return Err("认证类型应为WECHATPAY2-SHA256-RSA2048");
        }
        let (mut mchid, mut nonce_str, mut timestamp, mut serial_no, mut signature) =
            (None, None, None, None, None);
        for part in params.split(',') {
            let (k, v) = part.trim().split_once('=').ok_or("参数应为k=\"v\"")?;
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or("参数值应使用双引号")?
                .to_string();
            let slot = match k {
                "mchid" => &mut mchid,
                "nonce_str" => &mut nonce_str,
                "timestamp" => &mut timestamp,
                "serial_no" => &mut serial_no,
                "signature" => &mut signature,
                _ => return Err("未知的认证参数"),
            };
            if slot.replace(v).is_some() {
                return Err("认证参数重复");
            }
        }
        let need = |v: Option<String>| v.filter(|v| !v.is_empty()).ok_or("缺少认证参数");
        Ok(Authorization {
            mchid: need(mchid)?,
            nonce_str: need(nonce_str)?,
            timestamp: need(timestamp)?,
            serial_no: need(serial_no)?,
            signature: need(signature)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_in_any_order_and_refuses_the_malformed() {
        let a = Authorization::parse(
            r#"WECHATPAY2-SHA256-RSA2048 serial_no="ABC",mchid="1900000001",nonce_str="n",signature="c2ln",timestamp="1624523846""#,
        )
        .unwrap();
        assert_eq!(
            a,
            Authorization {
                mchid: "1900000001".into(),
                nonce_str: "n".into(),
                timestamp: "1624523846".into(),
                serial_no: "ABC".into(),
                signature: "c2ln".into(),
            }
        );
        for bad in [
            r#"Bearer mchid="1""#,
            r#"WECHATPAY2-SHA256-RSA2048 mchid="1""#,
            r#"WECHATPAY2-SHA256-RSA2048 mchid=1,nonce_str="n",signature="s",timestamp="1",serial_no="a""#,
            r#"WECHATPAY2-SHA256-RSA2048 mchid="1",mchid="2",nonce_str="n",signature="s",timestamp="1",serial_no="a""#,
            r#"WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",signature="s",timestamp="1",serial_no="a",x="y""#,
        ] {
            assert!(Authorization::parse(bad).is_err(), "{bad}");
        }
    }
}
