//! Stripe's v1 request bodies: `application/x-www-form-urlencoded` where nested hashes are
//! spelled with brackets (`metadata[paygate_order]=…`, `payment_method_data[fpx][bank]=…`)
//! and arrays are indexed (`payment_method_types[0]=paynow`), as the official clients
//! encode them. Building the body from a JSON value keeps every request readable as the
//! object the API reference documents.

use serde_json::Value;

/// The form body of `params` (an object). `null` members are left out; `true`/`false` and
/// numbers are written as text.
pub fn encode(params: &Value) -> String {
    let mut pairs = Vec::new();
    flatten("", params, &mut pairs);
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

/// `(bracketed key, value)` pairs of `params`, in the order they are sent.
pub fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    let key = |child: &str| {
        if prefix.is_empty() {
            child.to_string()
        } else {
            format!("{prefix}[{child}]")
        }
    };
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&key(k), v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&key(&i.to_string()), v, out);
            }
        }
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        Value::Bool(b) => out.push((prefix.to_string(), b.to_string())),
        Value::Number(n) => out.push((prefix.to_string(), n.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_hashes_use_brackets_and_arrays_are_indexed() {
        let p = json!({
            "amount": 1000,
            "confirm": true,
            "metadata": {"paygate_order": "01H&x"},
            "payment_method_data": {"type": "fpx", "fpx": {"bank": "maybank2u"}},
            "payment_method_types": ["paynow"],
            "skipped": null,
        });
        let mut pairs = Vec::new();
        flatten("", &p, &mut pairs);
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "amount",
                "confirm",
                "metadata[paygate_order]",
                "payment_method_data[fpx][bank]",
                "payment_method_data[type]",
                "payment_method_types[0]",
            ]
        );
        let body = encode(&p);
        assert!(
            body.contains("metadata%5Bpaygate_order%5D=01H%26x"),
            "{body}"
        );
        assert!(body.contains("confirm=true"), "{body}");
        assert!(!body.contains("skipped"), "{body}");
        // What a form decoder reads back is the bracketed keys and the exact values.
        let back: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(back, pairs);
    }

    proptest::proptest! {
        /// Whatever the values, a form decoder reads back exactly the flattened pairs.
        #[test]
        fn any_values_survive_encoding(
            meta in proptest::collection::btree_map("[a-z_]{1,8}", "\\PC{0,16}", 0..5),
            amount in 1i64..99_999_999,
        ) {
            let p = json!({"amount": amount, "metadata": meta});
            let mut pairs = Vec::new();
            flatten("", &p, &mut pairs);
            let body = encode(&p);
            let back: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
            proptest::prop_assert_eq!(back, pairs);
        }
    }
}
