//! The message formats of Alipay's OpenAPI gateway as its documentation describes them (自行
//! 实现验签 / 异步通知验签), implemented here for the provider side: the form encoding of
//! requests and notifications, the string to sign, and the response envelope key.

use std::collections::BTreeMap;

/// Left out of a request's string to sign.
pub const REQUEST_UNSIGNED: &[&str] = &["sign"];
/// Left out of a notification's (and a return URL's) string to sign.
pub const NOTIFY_UNSIGNED: &[&str] = &["sign", "sign_type"];

/// Every parameter but `unsigned` ones and empty values, sorted by key in ASCII order,
/// as raw (not URL-encoded) `key=value` pairs joined with `&`.
pub fn string_to_sign(params: &BTreeMap<String, String>, unsigned: &[&str]) -> String {
    params
        .iter()
        .filter(|(k, v)| !v.is_empty() && !unsigned.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `alipay.trade.query` answers under `alipay_trade_query_response`.
pub fn response_key(method: &str) -> String {
    format!("{}_response", method.replace('.', "_"))
}

/// `application/x-www-form-urlencoded` (UTF-8), as notifications are POSTed and return
/// URLs carry their parameters.
pub fn form_encode(params: &BTreeMap<String, String>) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish()
}

/// Decodes a form or query string; a key given twice is refused, since a signed message
/// must have one meaning.
pub fn form_decode(text: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(text) {
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(format!("parameter `{k}` appears twice"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_to_sign_sorts_drops_empty_and_unsigned() {
        let p: BTreeMap<String, String> = [
            ("sign", "x"),
            ("sign_type", "RSA2"),
            ("b", "2 3"),
            ("a", "1&"),
            ("empty", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            string_to_sign(&p, REQUEST_UNSIGNED),
            "a=1&&b=2 3&sign_type=RSA2"
        );
        assert_eq!(string_to_sign(&p, NOTIFY_UNSIGNED), "a=1&&b=2 3");
        assert_eq!(
            response_key("alipay.trade.query"),
            "alipay_trade_query_response"
        );
        assert_eq!(form_decode(form_encode(&p).as_bytes()).unwrap(), p);
        assert!(form_decode(b"a=1&a=2").is_err());
    }
}
