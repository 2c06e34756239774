//! Stripe's wire conventions, provider side: decoding form bodies whose keys nest with
//! brackets (`a[b][0]=v`, and `a[]=v` for arrays) into the JSON object the API reference
//! describes, and Stripe's error object.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::{json, Map, Value};

/// Decodes a form body (or query string) into nested objects; objects whose keys are all
/// indexes become arrays. Later values of the same key win, as Stripe's decoder does.
pub fn decode(form: &[u8]) -> Result<Value, String> {
    let mut root = Value::Object(Map::new());
    for (key, value) in url::form_urlencoded::parse(form) {
        let path = split_key(&key)?;
        insert(&mut root, &path, Value::String(value.into_owned()))?;
    }
    Ok(arrays(root))
}

/// `a[b][0]` → `["a", "b", "0"]`.
fn split_key(key: &str) -> Result<Vec<String>, String> {
    let (head, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    if head.is_empty() {
        return Err(format!("invalid parameter `{key}`"));
    }
    let mut out = vec![head.to_string()];
    while !rest.is_empty() {
        let close = rest
            .find(']')
            .filter(|_| rest.starts_with('['))
            .ok_or_else(|| format!("invalid parameter `{key}`"))?;
        out.push(rest[1..close].to_string());
        rest = &rest[close + 1..];
    }
    Ok(out)
}

fn insert(node: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Value::Object(map) = node else {
        return Err(format!(
            "parameter `{}` is both a value and a hash",
            path.join("/")
        ));
    };
    let (first, rest) = path.split_first().expect("non-empty path");
    // `a[]=v`: the next free index.
    let name = if first.is_empty() {
        map.len().to_string()
    } else {
        first.clone()
    };
    if rest.is_empty() {
        map.insert(name, value);
        return Ok(());
    }
    let child = map.entry(name).or_insert_with(|| Value::Object(Map::new()));
    insert(child, rest, value)
}

fn arrays(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let indexed = !map.is_empty() && map.keys().all(|k| k.parse::<usize>().is_ok());
            if indexed {
                let mut items: Vec<(usize, Value)> = map
                    .into_iter()
                    .map(|(k, v)| (k.parse().unwrap_or(0), arrays(v)))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(map.into_iter().map(|(k, v)| (k, arrays(v))).collect())
            }
        }
        other => other,
    }
}

/// An answer before it becomes HTTP: what idempotency keys save and replay.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn ok(body: Value) -> Reply {
        Reply { status: 200, body }
    }

    pub fn into_response(self, replayed: bool) -> HttpResponse {
        let mut r = HttpResponse::build(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST),
        );
        r.insert_header(("Request-Id", request_id()));
        if replayed {
            r.insert_header(("Idempotent-Replayed", "true"));
        }
        r.json(self.body)
    }
}

/// A Stripe error answer.
pub fn error(
    status: u16,
    kind: &str,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) -> Reply {
    let mut e = json!({"type": kind, "message": message});
    if let Some(c) = code {
        e["code"] = json!(c);
        e["doc_url"] = json!(format!(
            "https://stripe.com/docs/error-codes/{}",
            c.replace('_', "-")
        ));
    }
    if let Some(p) = param {
        e["param"] = json!(p);
    }
    Reply {
        status,
        body: json!({ "error": e }),
    }
}

pub fn invalid(code: &str, message: &str, param: Option<&str>) -> Reply {
    error(400, "invalid_request_error", Some(code), message, param)
}

pub fn missing(param: &str) -> Reply {
    invalid(
        "parameter_missing",
        &format!("Missing required param: {param}."),
        Some(param),
    )
}

pub fn not_found(kind: &str, id: &str, param: &str) -> Reply {
    error(
        404,
        "invalid_request_error",
        Some("resource_missing"),
        &format!("No such {kind}: '{id}'"),
        Some(param),
    )
}

/// A random Stripe-style id: `prefix_` + 24 alphanumerics.
pub fn new_id(prefix: &str) -> String {
    use rand::distributions::{Alphanumeric, DistString};
    format!(
        "{prefix}_{}",
        Alphanumeric.sample_string(&mut rand::thread_rng(), 24)
    )
}

pub fn request_id() -> String {
    new_id("req")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracketed_keys_nest_and_indexed_ones_become_arrays() {
        let v = decode(b"amount=1000&metadata%5Border%5D=o%261&payment_method_types%5B0%5D=paynow&line_items[0][price_data][unit_amount]=5&line_items[0][quantity]=1&expand[]=a&expand[]=b").unwrap();
        assert_eq!(
            v,
            json!({
                "amount": "1000",
                "metadata": {"order": "o&1"},
                "payment_method_types": ["paynow"],
                "line_items": [{"price_data": {"unit_amount": "5"}, "quantity": "1"}],
                "expand": ["a", "b"],
            })
        );
        assert!(decode(b"a=1&a[b]=2").is_err());
        assert!(decode(b"[x]=1").is_err());
        assert!(decode(b"a[b=1").is_err());
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        /// Any hash of hashes sent with bracketed keys reads back as that hash.
        #[test]
        fn bracketed_hashes_read_back(
            m in proptest::collection::btree_map("[a-z_]{1,8}", proptest::collection::btree_map("[a-z_]{1,8}", "\\PC{0,12}", 1..4), 1..4)
        ) {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (k, inner) in &m {
                for (k2, v) in inner {
                    form.append_pair(&format!("{k}[{k2}]"), v);
                }
            }
            let got = decode(form.finish().as_bytes()).unwrap();
            let want: Value = serde_json::to_value(&m).unwrap();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
