//! The simulator's own string to sign against the published AL-1 request, so it is held to
//! the same external vector as the connector rather than to the connector.

use std::collections::BTreeMap;

use super::protocol::{string_to_sign, REQUEST_UNSIGNED};
use crate::protocol_primitives::rsa::RsaSigner;

const AL1_SIGN: &str = "FrzUwXziVWK2x5glZkGoQ6dGR87O33APv3D/lWjVqPrFnMwcYjOYyln1B1bw5VuOwokLRmqcwWuTumBg8Q+n4FkVR3DMCvL8ywTBp5+6pRAETfhFop4m+r6jI+dgOavwyoZ69CWCzCcEyb0vMjgrV2eoSI4bgLjJyPcGpZ+iDBTSvE6eVxs05bUjainAOB5NnAvME06nkaxGLB4qwF9c3SQoiZt7QcMRdyy6mRItZxRaEjMm6qX8dfPuuquJC4wpTRk8PQeu5EMR4yyc1atxso3CMovjkGr5LzDtqLNseyqqorYW+Gfu3ugHSs9aqkwAAysg79O6TsvuFa9OHq64Tg==";

#[test]
fn al1_request_verifies_over_the_simulators_string_to_sign() {
    let params: BTreeMap<String, String> = [
        ("app_id", "9021000122682882"),
        ("method", "alipay.trade.query"),
        ("format", "JSON"),
        ("return_url", "http://hk.ysdor.cn/index.php"),
        ("charset", "utf-8"),
        ("sign_type", "RSA2"),
        ("sign", AL1_SIGN),
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
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let content = string_to_sign(&params, REQUEST_UNSIGNED);
    assert_eq!(
        content,
        "alipay_root_cert_sn=687b59193f3f462dd5336e5abf83c5d8_02941eef3187dddf3d3b83462e1dfcf6&app_cert_sn=e90dd23a37c5c7b616e003970817ff82&app_id=9021000122682882&biz_content={\"out_trade_no\":\"1703141270\"}&charset=utf-8&format=JSON&method=alipay.trade.query&notify_url=http://hk.ysdor.cn/index.php&return_url=http://hk.ysdor.cn/index.php&sign_type=RSA2&timestamp=2023-12-21 06:54:37&version=1.0"
    );
    let app_key = RsaSigner::from_text(include_str!("../fixtures/vectors/ysd_app_private_key.pem"))
        .unwrap()
        .public_key();
    assert!(app_key.verify(content.as_bytes(), AL1_SIGN));
}
