//! The encodings on the wire: requests and backUrl notifications are
//! `application/x-www-form-urlencoded` (UTF-8); synchronous answers are a raw `k=v&k=v`
//! string whose values are not percent-encoded (they may contain `=`, line breaks, and
//! `{…}` groups holding `&`), which UnionPay's SDKs split on `&` outside braces and on the
//! first `=` of each pair.

use std::collections::BTreeMap;

/// Percent-encoded form of the fields (the signature covers the raw values).
pub fn form_encode(fields: &BTreeMap<String, String>) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter())
        .finish()
}

/// Decodes a form body, refusing a key given twice (a signed message has one meaning).
pub fn form_decode(body: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(format!("field `{k}` appears twice"));
        }
    }
    Ok(out)
}

/// Splits a synchronous answer into its fields.
pub fn parse_answer(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    let text = text.trim_end_matches(['\r', '\n']);
    let mut pairs = Vec::new();
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            '&' if depth == 0 => {
                pairs.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    pairs.push(&text[start..]);
    for pair in pairs.into_iter().filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("answer part without `=`: {pair:.40}"))?;
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("field `{k}` appears twice"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_values_keep_equals_signs_line_breaks_and_braced_ampersands() {
        let f =
            parse_answer("a=1&signature=ab+c==&cert=-----BEGIN\r\nX=\r\n-----END&r={x=1&y=2}&e=")
                .unwrap();
        assert_eq!(f["signature"], "ab+c==");
        assert_eq!(f["cert"], "-----BEGIN\r\nX=\r\n-----END");
        assert_eq!(f["r"], "{x=1&y=2}");
        assert_eq!(f["e"], "");
        assert!(parse_answer("a=1&a=2").is_err());
        assert!(parse_answer("novalue").is_err());
    }

    proptest::proptest! {
        #[test]
        fn answers_round_trip(
            m in proptest::collection::btree_map("[a-zA-Z]{1,12}", "[^&{}\r\n]{0,40}", 0..8)
        ) {
            let text = m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
            proptest::prop_assert_eq!(parse_answer(&text).unwrap(), m);
        }

        #[test]
        fn any_answer_text_is_parsed_or_refused_without_panic(s in "\\PC{0,120}") {
            let _ = parse_answer(&s);
        }

        #[test]
        fn forms_round_trip(m in proptest::collection::btree_map("\\PC{1,12}", "\\PC{0,40}", 0..8)) {
            proptest::prop_assert_eq!(form_decode(form_encode(&m).as_bytes()).unwrap(), m);
        }
    }

    #[test]
    fn form_round_trip_and_duplicates() {
        let mut m = BTreeMap::new();
        m.insert("k".to_string(), "a b&c=+/".to_string());
        assert_eq!(form_decode(form_encode(&m).as_bytes()).unwrap(), m);
        assert!(form_decode(b"a=1&a=1").is_err());
    }
}
