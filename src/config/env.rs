//! `PAYGATE__SECTION__KEY` environment overrides, applied to the parsed TOML before it is
//! turned into typed config (so an override is validated like the file).

use super::ConfigError;

/// Sets `a__b__0__c` inside `root`, creating tables as needed. Where the file already has
/// a string at that place the value stays a string (a numeric merchant id such as WeChat's
/// `mchid = "1900000001"` must not turn into an integer); elsewhere values that parse as
/// TOML scalars (integers, booleans, arrays) keep that type and anything else is a string.
pub(super) fn apply_override(
    root: &mut toml::Value,
    var: &str,
    path: &str,
    raw: &str,
) -> Result<(), ConfigError> {
    let err = |reason: &str| ConfigError::Env {
        var: var.to_string(),
        reason: reason.to_string(),
    };
    let parts: Vec<String> = path.split("__").map(|p| p.to_ascii_lowercase()).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(err("empty path segment"));
    }
    let scalar = parse_scalar(raw);
    let value = |existing: Option<&toml::Value>| match existing {
        Some(toml::Value::String(_)) => toml::Value::String(raw.to_string()),
        _ => scalar.clone(),
    };
    let mut cur = root;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        cur = match cur {
            toml::Value::Table(t) => {
                if last {
                    let v = value(t.get(part.as_str()));
                    t.insert(part.clone(), v);
                    return Ok(());
                }
                t.entry(part.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            }
            toml::Value::Array(a) => {
                let idx: usize = part
                    .parse()
                    .map_err(|_| err("array segments must be indexes"))?;
                let slot = a
                    .get_mut(idx)
                    .ok_or_else(|| err("array index out of range"))?;
                if last {
                    *slot = value(Some(slot));
                    return Ok(());
                }
                slot
            }
            _ => return Err(err("path goes through a value that is not a table")),
        };
    }
    Ok(())
}

fn parse_scalar(raw: &str) -> toml::Value {
    if raw.starts_with('[') {
        if let Ok(t) = toml::from_str::<toml::Table>(&format!("v = {raw}")) {
            if let Some(v) = t.get("v") {
                return v.clone();
            }
        }
    }
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match raw {
        "true" => return toml::Value::Boolean(true),
        "false" => return toml::Value::Boolean(false),
        _ => {}
    }
    toml::Value::String(raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Value {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_string_in_the_file_stays_a_string_however_numeric_the_override() {
        let mut v = table("[ch.settings]\nmchid = \"1900000001\"\nrate = 10\n");
        apply_override(
            &mut v,
            "PAYGATE__CH__SETTINGS__MCHID",
            "CH__SETTINGS__MCHID",
            "1900000009",
        )
        .unwrap();
        apply_override(
            &mut v,
            "PAYGATE__CH__SETTINGS__RATE",
            "CH__SETTINGS__RATE",
            "20",
        )
        .unwrap();
        apply_override(
            &mut v,
            "PAYGATE__CH__SETTINGS__NEW",
            "CH__SETTINGS__NEW",
            "7",
        )
        .unwrap();
        let s = &v["ch"]["settings"];
        assert_eq!(s["mchid"], toml::Value::String("1900000009".into()));
        assert_eq!(s["rate"], toml::Value::Integer(20));
        assert_eq!(s["new"], toml::Value::Integer(7), "no file value: inferred");
    }

    #[test]
    fn array_entries_keep_the_type_of_what_they_replace() {
        let mut v = table("[[m]]\nid = \"7\"\n");
        apply_override(&mut v, "PAYGATE__M__0__ID", "M__0__ID", "8").unwrap();
        assert_eq!(v["m"][0]["id"], toml::Value::String("8".into()));
        assert!(apply_override(&mut v, "PAYGATE__M__3__ID", "M__3__ID", "8").is_err());
    }
}
