//! Settings: parsing, key sources (files, environment variables), errors naming the field.

use super::*;
use crate::connectors::wechat_pay::test_support::{fixture, settings_table, APIV3_KEY};

fn with(edit: impl FnOnce(&mut toml::Table)) -> Result<Resolved, SettingsError> {
    let mut t = settings_table();
    edit(&mut t);
    Settings::parse(&t)?.resolve()
}

#[test]
fn the_example_settings_resolve_without_leaking_secrets() {
    let r = with(|_| {}).unwrap();
    assert_eq!(r.platform.serials().count(), 2);
    let dbg = format!("{r:?}");
    assert!(!dbg.contains(APIV3_KEY), "APIv3 key in Debug output");
    assert!(
        !dbg.contains("PRIVATE KEY") && !dbg.contains("MII"),
        "key material in Debug output"
    );
}

#[test]
fn bad_settings_name_the_field() {
    let field = |r: Result<Resolved, SettingsError>| r.unwrap_err().field;
    assert_eq!(
        field(with(|t| {
            t.insert("apiv3_key".into(), "short".into());
        })),
        "apiv3_key"
    );
    assert_eq!(
        field(with(|t| {
            t.insert("mchid".into(), "abc".into());
        })),
        "mchid"
    );
    assert_eq!(
        field(with(|t| {
            t.insert("h5_type".into(), "Desktop".into());
        })),
        "h5_type"
    );
    assert_eq!(
        field(with(|t| {
            t.insert("bogus".into(), 1.into());
        })),
        "settings"
    );
    assert_eq!(
        field(with(|t| {
            t.insert(
                "merchant_private_key_file".into(),
                fixture("TEST_ONLY_platform_cert.pem").into(),
            );
        })),
        "merchant_private_key"
    );
    assert_eq!(
        field(with(|t| {
            t.insert(
                "merchant_private_key_env".into(),
                "PAYGATE_TEST_UNSET_VAR_X".into(),
            );
        })),
        "merchant_private_key"
    );
    let wrong_serial = with(|t| {
        let keys = t.get_mut("platform_keys").unwrap().as_array_mut().unwrap();
        keys[1]
            .as_table_mut()
            .unwrap()
            .insert("serial".into(), "ABCDEF".into());
    });
    assert_eq!(field(wrong_serial), "platform_keys[1].serial");
}

#[test]
fn keys_can_come_from_environment_variables() {
    let pem = std::fs::read_to_string(fixture("TEST_ONLY_merchant_private_key.pem")).unwrap();
    std::env::set_var("PAYGATE_TEST_WECHAT_MERCHANT_KEY", pem);
    std::env::set_var("PAYGATE_TEST_WECHAT_APIV3", APIV3_KEY);
    let r = with(|t| {
        t.remove("merchant_private_key_file");
        t.remove("apiv3_key");
        t.insert(
            "merchant_private_key_env".into(),
            "PAYGATE_TEST_WECHAT_MERCHANT_KEY".into(),
        );
        t.insert("apiv3_key_env".into(), "PAYGATE_TEST_WECHAT_APIV3".into());
    })
    .unwrap();
    assert_eq!(r.apiv3_key.expose(), APIV3_KEY);
}

#[test]
fn the_shipped_config_snippet_parses() {
    let text = std::fs::read_to_string(fixture("config.snippet.toml")).unwrap();
    let v: toml::Table = toml::from_str(&text).unwrap();
    let settings = v["channels"]["wechat_pay"]["settings"].as_table().unwrap();
    let s = Settings::parse(settings).unwrap();
    assert_eq!(s.platform_keys.len(), 2);
    assert_eq!(s.sub_merchants["partner_shop"].sub_mchid, "1900000109");
}

#[test]
fn the_apiv3_key_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("apiv3.key");
    std::fs::write(&path, format!("{APIV3_KEY}\n")).unwrap();
    let r = with(|t| {
        t.remove("apiv3_key");
        t.insert("apiv3_key_file".into(), path.display().to_string().into());
    })
    .unwrap();
    assert_eq!(r.apiv3_key.expose(), APIV3_KEY, "trailing newline ignored");
    let field = |r: Result<Resolved, SettingsError>| r.unwrap_err().field;
    assert_eq!(
        field(with(|t| {
            t.insert("apiv3_key_file".into(), path.display().to_string().into());
        })),
        "apiv3_key",
        "inline and file together"
    );
    assert_eq!(
        field(with(|t| {
            t.remove("apiv3_key");
            t.insert("apiv3_key_file".into(), "/nonexistent/apiv3.key".into());
        })),
        "apiv3_key_file"
    );
    assert_eq!(
        field(with(|t| {
            t.remove("apiv3_key");
        })),
        "apiv3_key",
        "none given"
    );
}

#[test]
fn an_inline_apiv3_key_is_for_the_built_in_simulator_only() {
    use crate::connectors::wechat_pay::contract_tests::{channel_config, connector_env};
    use crate::connectors::wechat_pay::WechatPayConnector;
    let http = reqwest::Client::new();
    let env = || connector_env("http://127.0.0.1:9", &http);
    assert!(WechatPayConnector::new(&channel_config(settings_table()), env()).is_ok());
    let mut prod = channel_config(settings_table());
    prod.base_url = Some("https://api.mch.weixin.qq.com".into());
    match WechatPayConnector::new(&prod, env()) {
        Err(crate::connectors::ConnectorError::Config(m)) => {
            assert!(m.contains("settings.apiv3_key"), "{m}");
            assert!(
                !m.contains(APIV3_KEY),
                "the key itself is not in the error: {m}"
            );
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("an inline APIv3 key was accepted for a real base_url"),
    }
    std::env::set_var("PAYGATE_TEST_WECHAT_APIV3_PROD", APIV3_KEY);
    prod.settings.remove("apiv3_key");
    prod.settings.insert(
        "apiv3_key_env".into(),
        "PAYGATE_TEST_WECHAT_APIV3_PROD".into(),
    );
    assert!(WechatPayConnector::new(&prod, env()).is_ok());
}

#[test]
fn the_merchant_key_can_be_the_p12_wechat_pay_issues() {
    let p12 = |t: &mut toml::Table, password: &str| {
        t.insert(
            "merchant_private_key_file".into(),
            fixture("TEST_ONLY_apiclient_cert.p12").into(),
        );
        t.insert("merchant_private_key_password".into(), password.into());
    };
    let from_p12 = with(|t| p12(t, "1900000001")).unwrap();
    let from_pem = with(|_| {}).unwrap();
    // The same key either way: the same signature over the same message.
    assert_eq!(
        from_p12.signer.sign(b"GET\n/v3/certificates\n1\nn\n\n"),
        from_pem.signer.sign(b"GET\n/v3/certificates\n1\nn\n\n")
    );

    let e = with(|t| p12(t, "wrong")).unwrap_err();
    assert_eq!(e.field, "merchant_private_key");
    assert!(e.reason.contains("password"), "{e:?}");

    // The certificate inside names another serial than the configured one.
    let e = with(|t| {
        p12(t, "1900000001");
        t.insert(
            "merchant_serial_no".into(),
            "5157F09EFDC096DE15EBE81A47057A7232F1B8E1".into(),
        );
    })
    .unwrap_err();
    assert_eq!(e.field, "merchant_serial_no");
}
