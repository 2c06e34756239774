//! Published vectors AL-1..AL-5 (Alipay's and its SDKs' published examples) and the response / notification rules.
//! The ysd sandbox certificate expired on 2024-06-06: nothing here checks validity periods.

use std::collections::BTreeMap;

use super::cert::{cert_sn, root_cert_sn};
use super::notify::{parse, verify_params};
use super::sign::{sign_content, Rsa2Signer, Rsa2Verifier, NOTIFY_SKIP, REQUEST_SKIP};
use super::*;
use crate::connectors::RawCallback;

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/src/connectors/alipay/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn ysd_alipay_key() -> Rsa2Verifier {
    Rsa2Verifier::from_text(&fixture("vectors/ysd_alipayPublicCert.crt")).unwrap()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const AL1_SIGN: &str = "FrzUwXziVWK2x5glZkGoQ6dGR87O33APv3D/lWjVqPrFnMwcYjOYyln1B1bw5VuOwokLRmqcwWuTumBg8Q+n4FkVR3DMCvL8ywTBp5+6pRAETfhFop4m+r6jI+dgOavwyoZ69CWCzCcEyb0vMjgrV2eoSI4bgLjJyPcGpZ+iDBTSvE6eVxs05bUjainAOB5NnAvME06nkaxGLB4qwF9c3SQoiZt7QcMRdyy6mRItZxRaEjMm6qX8dfPuuquJC4wpTRk8PQeu5EMR4yyc1atxso3CMovjkGr5LzDtqLNseyqqorYW+Gfu3ugHSs9aqkwAAysg79O6TsvuFa9OHq64Tg==";

#[test]
fn al1_request_signature() {
    let params = map(&[
        ("app_id", "9021000122682882"),
        ("method", "alipay.trade.query"),
        ("format", "JSON"),
        ("return_url", "http://hk.ysdor.cn/index.php"),
        ("charset", "utf-8"),
        ("sign_type", "RSA2"),
        ("sign", "ignored"),
        ("timestamp", "2023-12-21 06:54:37"),
        ("version", "1.0"),
        ("notify_url", "http://hk.ysdor.cn/index.php"),
        ("app_auth_token", ""),
        ("app_cert_sn", "e90dd23a37c5c7b616e003970817ff82"),
        (
            "alipay_root_cert_sn",
            "687b59193f3f462dd5336e5abf83c5d8_02941eef3187dddf3d3b83462e1dfcf6",
        ),
        ("biz_content", r#"{"out_trade_no":"1703141270"}"#),
    ]);
    let content = sign_content(&params, REQUEST_SKIP);
    assert_eq!(
        content,
        "alipay_root_cert_sn=687b59193f3f462dd5336e5abf83c5d8_02941eef3187dddf3d3b83462e1dfcf6&app_cert_sn=e90dd23a37c5c7b616e003970817ff82&app_id=9021000122682882&biz_content={\"out_trade_no\":\"1703141270\"}&charset=utf-8&format=JSON&method=alipay.trade.query&notify_url=http://hk.ysdor.cn/index.php&return_url=http://hk.ysdor.cn/index.php&sign_type=RSA2&timestamp=2023-12-21 06:54:37&version=1.0"
    );
    let signer = Rsa2Signer::from_text(&fixture("vectors/ysd_app_private_key.pem")).unwrap();
    assert_eq!(signer.sign(&content), AL1_SIGN);
    // The same key as bare Base64 PKCS#1 (how Alipay's key tool hands it out) signs the same.
    let bare: String = fixture("vectors/ysd_app_private_key.pem")
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert_eq!(
        Rsa2Signer::from_text(&bare).unwrap().sign(&content),
        AL1_SIGN
    );
}

fn al2_params() -> BTreeMap<String, String> {
    map(&[
        ("gmt_create", "2023-12-21 16:26:32"),
        ("charset", "utf-8"),
        ("seller_id", "2088721003899159"),
        ("subject", "yansongda+测试 - 1"),
        ("sign", "Rs7SszD15WqbdJsGZPN+HpCBcQzBCkJx0ccNeg1rpUxyTVA1ps2vJ4sLhaa7O+lliTj6N1MSGqc8cK6JSs7nPg731RAOfneirtrqrlW2u0m15kWAKrVjgPGLUMtK/eT15e/6NcxsWra/bsZaan+nFDzO8xceOwy96W+qVUtTPfBRBp9Zjryi5oIONOifGMALD284YbNC3qq2eyqVysF+zgk+/MtuHk2Eh/fL7UbClHQXQ2hD686Dt8bR949TNMbkWCYXstmjVBO55qF8xhaoF/b5zAe5/O/13g/QlwDXBcF3XwJpbFWrBehoFFCnJhR/xXZ0E+D2Vsw1oAQ3l+R2dQ=="),
        ("buyer_id", "2088722003899169"),
        ("invoice_amount", "0.01"),
        ("notify_id", "2023122101222162644199160501632046"),
        ("fund_bill_list", r#"[{"amount":"0.01","fundChannel":"ALIPAYACCOUNT"}]"#),
        ("notify_type", "trade_status_sync"),
        ("trade_status", "TRADE_SUCCESS"),
        ("receipt_amount", "0.01"),
        ("buyer_pay_amount", "0.01"),
        ("app_id", "9021000122682882"),
        ("sign_type", "RSA2"),
        ("notify_time", "2023-12-21 16:26:45"),
        ("version", "1.0"),
        ("out_trade_no", "1703147160"),
        ("total_amount", "0.01"),
        ("trade_no", "2023122122001499160501589436"),
        ("auth_app_id", "9021000122682882"),
        ("point_amount", "0.00"),
        ("gmt_payment", "2023-12-21 16:26:43"),
    ])
}

#[test]
fn al2_real_sandbox_notification_verifies() {
    let params = al2_params();
    assert_eq!(
        sign_content(&params, NOTIFY_SKIP),
        "app_id=9021000122682882&auth_app_id=9021000122682882&buyer_id=2088722003899169&buyer_pay_amount=0.01&charset=utf-8&fund_bill_list=[{\"amount\":\"0.01\",\"fundChannel\":\"ALIPAYACCOUNT\"}]&gmt_create=2023-12-21 16:26:32&gmt_payment=2023-12-21 16:26:43&invoice_amount=0.01&notify_id=2023122101222162644199160501632046&notify_time=2023-12-21 16:26:45&notify_type=trade_status_sync&out_trade_no=1703147160&point_amount=0.00&receipt_amount=0.01&seller_id=2088721003899159&subject=yansongda+测试 - 1&total_amount=0.01&trade_no=2023122122001499160501589436&trade_status=TRADE_SUCCESS&version=1.0"
    );
    let key = ysd_alipay_key();
    verify_params(&params, &key).unwrap();
    // Including sign_type (the request rule) must fail: notifications exclude it.
    assert!(!key.verify(&sign_content(&params, REQUEST_SKIP), &params["sign"]));

    // Through the form-encoded body, as it arrives at /callbacks/alipay.
    let raw = raw_callback(&form_encode(&params));
    let n = parse("9021000122682882", &key, &raw).unwrap();
    assert_eq!(
        n,
        Notification::Payment {
            order_ref: "1703147160".into(),
            payment: ProviderPayment::Paid {
                amount: Money::new(1, Currency::Cny).unwrap(),
                provider_transaction_id: "2023122122001499160501589436".into(),
                paid_at: time::parse_gmt8("2023-12-21 16:26:43").unwrap(),
            }
        }
    );
    // Someone else's app.
    assert!(matches!(
        parse("2021000000000001", &key, &raw),
        Err(ConnectorError::BadNotification(_))
    ));
    // Tampered amount.
    let mut tampered = params.clone();
    tampered.insert("total_amount".into(), "100.00".into());
    assert!(matches!(
        parse(
            "9021000122682882",
            &key,
            &raw_callback(&form_encode(&tampered))
        ),
        Err(ConnectorError::Signature(_))
    ));
}

pub(crate) fn raw_callback(body: &str) -> RawCallback {
    RawCallback {
        headers: vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        )],
        query: String::new(),
        body: body.to_string().into_bytes().into(),
        received_at: 0,
    }
}

#[test]
fn al3_real_sandbox_return_verifies() {
    let url = "http://127.0.0.1:8000/alipay/verify?charset=utf-8&out_trade_no=1703141270&method=alipay.trade.page.pay.return&total_amount=0.01&sign=RJzbs5y7I41BO9UPnCdq7oWgoInyjELi9Qj6D%2BLAZXVpHTedemAHfVUowuF9iuznGZLxU6Xv1L3ZkzTGxmIfvzontCZNb0%2BRROqiT41lX91VYd6j4ZcOn8zsvlCdQSVHmYNJi%2Bw%2F40uHxo1ufRwHxBNtQKsoJCYk5VtZ92pQFvVyE5wPPT6Nolww5WlCAPxcWNby8VAiWT%2Bd2yxmFm8vZ6yj5rsLHTR72O76TkEXzOEex6e36Zf8M9YXww7RQbflMfk9eURPHW%2FoQq4hZr%2FlX7%2FO1nT5vdT4UVFai4V18Xm1KspBun8outJxqlWMIKVxGsYhIH1E79ORt4wQA7PG1g%3D%3D&trade_no=2023122122001499160501586202&auth_app_id=9021000122682882&version=1.0&app_id=9021000122682882&sign_type=RSA2&seller_id=2088721003899159&timestamp=2023-12-21+14%3A48%3A44";
    let query = url.split_once('?').unwrap().1;
    let params = form_decode(query.as_bytes()).unwrap();
    assert_eq!(
        sign_content(&params, NOTIFY_SKIP),
        "app_id=9021000122682882&auth_app_id=9021000122682882&charset=utf-8&method=alipay.trade.page.pay.return&out_trade_no=1703141270&seller_id=2088721003899159&timestamp=2023-12-21 14:48:44&total_amount=0.01&trade_no=2023122122001499160501586202&version=1.0"
    );
    verify_params(&params, &ysd_alipay_key()).unwrap();
    let mut other = params.clone();
    other.insert("total_amount".into(), "0.02".into());
    assert!(verify_params(&other, &ysd_alipay_key()).is_err());
}

const AL4_CONTENT: &str = r#"{"code":"10000","msg":"Success","order_id":"20231220110070000002150000657610","out_biz_no":"2023122022560000","pay_date":"2023-12-20 22:56:33","pay_fund_order_id":"20231220110070001502150000660902","status":"SUCCESS","trans_amount":"0.01"}"#;
const AL4_SIGN: &str = "eITxP5fZiJPB2+vZb90IRkv2iARxeNx/6Omxk7FStqflhG5lMoCvGjo2FZ6Szo1bGBMBReazZuqLaqsgomWAUO9onMVurB3enLbRvwUlpE7XEZaxk/sJYjgc2Y7pIAenvnLL9PEAiXmvUvuinUlvS9J2r1XysC0p/2wu7kEJ/GgZpFDIIYY9mdM6U1rGbi+RvirQXtQHmaEuuJWLA75NR1bvfG3L8znzW9xz1kOQqOWsQmD/bF1CDWbozNLwLCUmClRJz0Fj4mUYRF0zbW2VP8ZgHu1YvVKJ2+dWC9b+0o94URk7psIpc5NjiOM9Jsn6aoC2CfrJ/sqFMRCkYWzw6A==";

/// A connector with these settings (TOML) and a gateway nobody listens on.
fn connector_with(settings: &str) -> AlipayConnector {
    let table: toml::Table = toml::from_str(settings).unwrap();
    let env = ConnectorEnv {
        channel: crate::domain::ChannelName::parse("alipay").unwrap(),
        http: reqwest::Client::new(),
        base_url: "http://127.0.0.1:9/gateway.do".into(),
        callback_url: "http://127.0.0.1:9/callbacks/alipay".into(),
        public_url: "http://127.0.0.1:9".into(),
    };
    AlipayConnector::new(&table, env).unwrap()
}

fn ysd_connector() -> AlipayConnector {
    let dir = format!(
        "{}/src/connectors/alipay/fixtures/vectors",
        env!("CARGO_MANIFEST_DIR")
    );
    connector_with(&format!(
        r#"
        app_id = "9021000122682882"
        seller_id = "2088721003899159"
        app_private_key_file = "{dir}/ysd_app_private_key.pem"
        app_cert_file = "{dir}/ysd_alipayAppPublicCert.crt"
        alipay_public_cert_file = "{dir}/ysd_alipayPublicCert.crt"
        alipay_root_cert_file = "{dir}/ysd_alipayRootCert.crt"
        "#
    ))
}

#[test]
fn al4_sync_response_verified_over_the_raw_text() {
    assert!(ysd_alipay_key().verify(AL4_CONTENT, AL4_SIGN));
    assert!(!ysd_alipay_key().verify(AL4_CONTENT, &format!("A{AL4_SIGN}")));

    // The whole body: the signed text is the raw substring wherever it sits (here after
    // `sign`, with whitespace around it).
    let c = ysd_connector();
    let method = "alipay.fund.trans.uni.transfer";
    let body = format!("{{\"sign\":\"{AL4_SIGN}\",\n  \"alipay_fund_trans_uni_transfer_response\" : {AL4_CONTENT} }}");
    let f = c.read_response(method, &body).unwrap();
    assert_eq!(f["order_id"], "20231220110070000002150000657610");

    let bad = format!(
        r#"{{"alipay_fund_trans_uni_transfer_response":{AL4_CONTENT},"sign":"A{AL4_SIGN}"}}"#
    );
    assert!(matches!(
        c.read_response(method, &bad),
        Err(ConnectorError::Signature(_))
    ));
    let tampered = body.replace(r#""trans_amount":"0.01""#, r#""trans_amount":"9.99""#);
    assert!(matches!(
        c.read_response(method, &tampered),
        Err(ConnectorError::Signature(_))
    ));
    let unsigned = format!(r#"{{"alipay_fund_trans_uni_transfer_response":{AL4_CONTENT}}}"#);
    assert!(matches!(
        c.read_response(method, &unsigned),
        Err(ConnectorError::Signature(_))
    ));
}

/// A connector on the TEST_ONLY key pairs, so responses can be signed as Alipay would.
fn fixture_connector() -> AlipayConnector {
    let dir = format!(
        "{}/src/connectors/alipay/fixtures",
        env!("CARGO_MANIFEST_DIR")
    );
    connector_with(&format!(
        r#"
        app_id = "2021000000000001"
        seller_id = "2088102177000001"
        app_private_key_file = "{dir}/TEST_ONLY_app_private_key.pem"
        alipay_public_key_file = "{dir}/TEST_ONLY_alipay_public_key.pem"
        "#
    ))
}

/// `{"<method>_response":<content>,"sign":...}` signed with `key` (a fixture file name).
fn signed_response(method: &str, content: &str, key: &str) -> String {
    let sign = Rsa2Signer::from_text(&fixture(key)).unwrap().sign(content);
    format!(
        r#"{{"{}":{content},"sign":"{sign}"}}"#,
        super::sign::response_key(method)
    )
}

const TRADE_NOT_EXIST: &str = r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在"}"#;

#[test]
fn business_errors_surface_their_sub_code() {
    let c = fixture_connector();
    let key = "TEST_ONLY_alipay_private_key.pem";
    let body = signed_response("alipay.trade.query", TRADE_NOT_EXIST, key);
    match c.read_response("alipay.trade.query", &body) {
        Err(ConnectorError::Rejected { code, message }) => {
            assert_eq!(code, "ACQ.TRADE_NOT_EXIST");
            assert!(message.contains("交易不存在"));
        }
        other => panic!("{other:?}"),
    }
    let gw = r#"{"error_response":{"code":"40001","msg":"Missing Required Arguments","sub_code":"isv.missing-method","sub_msg":"缺少方法名参数"}}"#;
    assert!(matches!(
        c.read_response("alipay.trade.query", gw),
        Err(ConnectorError::Rejected { code, .. }) if code == "isv.missing-method"
    ));
    let busy = signed_response(
        "alipay.trade.refund",
        r#"{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error","sub_msg":"系统繁忙"}"#,
        key,
    );
    assert!(matches!(
        c.read_response("alipay.trade.refund", &busy),
        Err(ConnectorError::Transport(_))
    ));
}

#[test]
fn only_error_response_may_come_unsigned() {
    let c = fixture_connector();
    // A `<method>_response` needs a valid signature whatever its code: an unsigned or
    // wrongly signed refusal is not Alipay's word.
    for content in [
        TRADE_NOT_EXIST,
        r#"{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error"}"#,
        r#"{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature"}"#,
    ] {
        let unsigned = format!(r#"{{"alipay_trade_query_response":{content}}}"#);
        assert!(
            matches!(
                c.read_response("alipay.trade.query", &unsigned),
                Err(ConnectorError::Signature(_))
            ),
            "unsigned {content}"
        );
        let wrong = signed_response(
            "alipay.trade.query",
            content,
            "TEST_ONLY_wrong_private_key.pem",
        );
        assert!(
            matches!(
                c.read_response("alipay.trade.query", &wrong),
                Err(ConnectorError::Signature(_))
            ),
            "wrongly signed {content}"
        );
    }
    // The gateway's early refusal is unsigned; if it carries a sign, it must verify.
    let gw =
        r#"{"code":"40001","msg":"Missing Required Arguments","sub_code":"isv.missing-app-id"}"#;
    let forged_sign = format!(r#"{{"error_response":{gw},"sign":"Zm9yZ2Vk"}}"#);
    assert!(matches!(
        c.read_response("alipay.trade.query", &forged_sign),
        Err(ConnectorError::Signature(_))
    ));
    // An `error_response` is never a success, even claiming code 10000.
    let odd = r#"{"error_response":{"code":"10000","msg":"Success"}}"#;
    assert!(c.read_response("alipay.trade.query", odd).is_err());
}

#[test]
fn al5_certificate_serial_numbers() {
    assert_eq!(
        cert_sn(&fixture("vectors/ysd_alipayAppPublicCert.crt")).unwrap(),
        "e90dd23a37c5c7b616e003970817ff82"
    );
    assert_eq!(
        root_cert_sn(&fixture("vectors/ysd_alipayRootCert.crt")).unwrap(),
        "687b59193f3f462dd5336e5abf83c5d8_02941eef3187dddf3d3b83462e1dfcf6"
    );
    // And the connector sends them in certificate mode, signed (AL-1's params).
    let c = ysd_connector();
    let p = c.signed_params(
        "alipay.trade.query",
        &serde_json::json!({"out_trade_no":"1703141270"}),
        true,
        None,
    );
    assert_eq!(p["app_cert_sn"], "e90dd23a37c5c7b616e003970817ff82");
    assert_eq!(
        p["alipay_root_cert_sn"],
        "687b59193f3f462dd5336e5abf83c5d8_02941eef3187dddf3d3b83462e1dfcf6"
    );
    let app_key = Rsa2Verifier::from_text(&fixture("vectors/ysd_alipayAppPublicCert.crt")).unwrap();
    assert!(app_key.verify(&sign_content(&p, REQUEST_SKIP), &p["sign"]));
}

#[test]
fn trade_status_mapping() {
    let amt = Some(Money::new(100, Currency::Cny).unwrap());
    let tn = || Some("2024".to_string());
    assert_eq!(
        map_trade("WAIT_BUYER_PAY", amt, tn(), None).unwrap(),
        ProviderPayment::Pending
    );
    assert!(matches!(
        map_trade("TRADE_SUCCESS", amt, tn(), Some(5)).unwrap(),
        ProviderPayment::Paid { paid_at: 5, .. }
    ));
    assert!(matches!(
        map_trade("TRADE_FINISHED", amt, tn(), Some(5)).unwrap(),
        ProviderPayment::Paid { .. }
    ));
    // Closed unpaid vs closed because refunded in full.
    assert_eq!(
        map_trade("TRADE_CLOSED", amt, tn(), None).unwrap(),
        ProviderPayment::Closed
    );
    assert!(matches!(
        map_trade("TRADE_CLOSED", amt, tn(), Some(5)).unwrap(),
        ProviderPayment::Paid { .. }
    ));
    assert!(map_trade("TRADE_SUCCESS", None, tn(), None).is_err());
    assert!(map_trade("WHATEVER", amt, tn(), None).is_err());
}

#[test]
fn refund_notifications_are_recognised() {
    let alipay = Rsa2Signer::from_text(&fixture("TEST_ONLY_alipay_private_key.pem")).unwrap();
    let key = Rsa2Verifier::from_text(&fixture("TEST_ONLY_alipay_public_key.pem")).unwrap();
    let mut p = map(&[
        ("app_id", "2021000000000001"),
        ("out_trade_no", "01HX0000000000000000000000"),
        ("out_biz_no", "01HX0000000000000000000001"),
        ("trade_no", "2024"),
        ("trade_status", "TRADE_CLOSED"),
        ("total_amount", "1.00"),
        ("refund_fee", "1.00"),
        ("gmt_payment", "2024-01-01 10:00:00"),
        ("gmt_refund", "2024-01-01 11:00:00.123"),
        ("sign_type", "RSA2"),
    ]);
    let sign = alipay.sign(&sign_content(&p, NOTIFY_SKIP));
    p.insert("sign".into(), sign);
    let n = parse("2021000000000001", &key, &raw_callback(&form_encode(&p))).unwrap();
    assert!(
        matches!(n, Notification::Refund { refund_ref, .. } if refund_ref == "01HX0000000000000000000001")
    );
}

#[test]
fn keys_load_from_bare_base64_and_reject_garbage() {
    let pem = fixture("TEST_ONLY_alipay_public_key.pem");
    let bare: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert_eq!(
        Rsa2Verifier::from_text(&bare).unwrap(),
        Rsa2Verifier::from_text(&pem).unwrap()
    );
    assert!(Rsa2Verifier::from_text("not a key").is_err());
    assert!(Rsa2Signer::from_text(&pem).is_err());
    // Debug output never shows key material.
    let s = Rsa2Signer::from_text(&fixture("TEST_ONLY_app_private_key.pem")).unwrap();
    assert_eq!(format!("{s:?}"), "Rsa2Signer([redacted])");
}
