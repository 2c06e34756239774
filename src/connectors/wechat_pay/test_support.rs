//! Shared by the WeChat Pay unit and contract tests: the fixture settings (the same as the
//! example config), orders, and forged callbacks.

use std::collections::BTreeMap;

use crate::connectors::wechat_pay::simulator::wire;
use crate::connectors::RawCallback;
use crate::domain::{
    ChannelName, Currency, MerchantId, MerchantRef, Method, Money, Order, OrderId, OrderSpec,
    Payer, Refund, RefundId,
};

use super::settings::{Resolved, Settings};
use super::sign::RsaSigner;
use super::time::now_millis;

pub const MCHID: &str = "1900000001";
pub const APPID: &str = "wx8888888888888888";
pub const APP_APPID: &str = "wxa000000000000001";
pub const MINI_APPID: &str = "wxm000000000000001";
pub const SUB_MCHID: &str = "1900000109";
pub const SUB_APPID: &str = "wxs000000000000001";
pub const SUB_MINI_APPID: &str = "wxs100000000000001";
pub const APIV3_KEY: &str = "TEST0ONLY0apiv3key0sandbox000032";
pub const PUBKEY_ID: &str = "PUB_KEY_ID_0119000000012025010100000000000001";
pub const CERT_SERIAL: &str = "3C5A0E9B2B1F7D4E";
pub const MERCHANT_SERIAL: &str = "7A3B1C9D5E2F40618293A4B5C6D7E8F901234567";

pub fn fixture(name: &str) -> String {
    format!(
        "{}/src/connectors/wechat_pay/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

pub fn read_fixture(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

/// The example config's settings with absolute fixture paths.
pub fn settings_toml() -> String {
    format!(
        r#"
mchid = "{MCHID}"
appid = "{APPID}"
app_appid = "{APP_APPID}"
mini_program_appid = "{MINI_APPID}"
merchant_serial_no = "{MERCHANT_SERIAL}"
merchant_private_key_file = "{mk}"
apiv3_key = "{APIV3_KEY}"
h5_app_name = "paygate demo"
h5_app_url = "https://shop.example.com"

[[platform_keys]]
serial = "{PUBKEY_ID}"
public_key_file = "{pk}"

[[platform_keys]]
certificate_file = "{cert}"

[sub_merchants.partner_shop]
sub_mchid = "{SUB_MCHID}"
sub_appid = "{SUB_APPID}"
sub_mini_program_appid = "{SUB_MINI_APPID}"

[simulator]
platform_private_key_file = "{sim_key}"
platform_serial = "{PUBKEY_ID}"
merchant_public_key_file = "{merchant_pub}"
"#,
        mk = fixture("TEST_ONLY_merchant_private_key.pem"),
        pk = fixture("TEST_ONLY_platform_public_key.pem"),
        cert = fixture("TEST_ONLY_platform_cert.pem"),
        sim_key = fixture("TEST_ONLY_platform_pubkey_private_key.pem"),
        merchant_pub = fixture("TEST_ONLY_merchant_public_key.pem"),
    )
}

pub fn settings_table() -> toml::Table {
    toml::from_str(&settings_toml()).unwrap()
}

pub fn resolved() -> Resolved {
    Settings::parse(&settings_table())
        .unwrap()
        .resolve()
        .unwrap()
}

pub fn pubkey_platform_signer() -> RsaSigner {
    RsaSigner::from_pkcs8_pem(&read_fixture("TEST_ONLY_platform_pubkey_private_key.pem")).unwrap()
}

pub fn cert_platform_signer() -> RsaSigner {
    RsaSigner::from_pkcs8_pem(&read_fixture("TEST_ONLY_platform_cert_private_key.pem")).unwrap()
}

pub fn order(method: Method, merchant: &str, amount: i64) -> Order {
    let now = now_millis();
    let spec = OrderSpec {
        merchant_id: MerchantId::parse(merchant).unwrap(),
        merchant_order_no: MerchantRef::parse(&format!("M{}", wire::random_alnum(10))).unwrap(),
        amount: Money::new(amount, Currency::Cny).unwrap(),
        channel: ChannelName::parse("wechat_pay").unwrap(),
        method,
        subject: "测试商品 test goods".into(),
        notify_url: None,
        return_url: Some("https://shop.example.com/done?x=1".into()),
        expires_at: now + 15 * 60 * 1000,
        payer: Payer {
            ip: Some("203.0.113.7".into()),
            openid: Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into()),
            user_id: None,
            device_id: None,
            auth_code: None,
        },
        metadata: BTreeMap::new(),
        wallet: None,
    };
    Order::new(OrderId::generate(now), spec, now)
}

pub fn refund(amount: i64) -> Refund {
    let now = now_millis();
    Refund::new(
        RefundId::generate(now),
        MerchantRef::parse(&format!("R{}", wire::random_alnum(10))).unwrap(),
        Money::new(amount, Currency::Cny).unwrap(),
        Some("customer returned the goods".into()),
        now,
    )
}

/// A callback as WeChat would send it, signed by `signer` under `serial` with timestamp
/// `ts`, received now.
pub fn raw_callback(body: &str, signer: &RsaSigner, serial: &str, ts: i64) -> RawCallback {
    let mut headers: Vec<(String, String)> =
        wire::signature_headers(signer, serial, ts, body.as_bytes())
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
    headers.push(("content-type".into(), "application/json".into()));
    RawCallback {
        headers,
        query: String::new(),
        body: actix_web::web::Bytes::from(body.to_string()),
        received_at: now_millis(),
    }
}
