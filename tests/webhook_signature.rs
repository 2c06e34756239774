//! The worked example of docs/webhooks.md, checked against both paygate's signer and the
//! copyable merchant verifier in examples/verify_webhook.rs.

#[allow(dead_code)]
#[path = "../examples/verify_webhook.rs"]
mod merchant;

use merchant::{
    verify, VerifyError, EXAMPLE_BODY, EXAMPLE_HEADER, EXAMPLE_SECRET, EXAMPLE_TIMESTAMP,
};
use paygate::webhook;

#[test]
fn docs_worked_example_is_what_paygate_sends() {
    assert_eq!(
        webhook::sign(
            &[EXAMPLE_SECRET],
            EXAMPLE_TIMESTAMP,
            EXAMPLE_BODY.as_bytes()
        ),
        EXAMPLE_HEADER
    );
}

#[test]
fn docs_worked_example_verifies_in_the_merchant_example() {
    let body = EXAMPLE_BODY.as_bytes();
    assert_eq!(
        verify(EXAMPLE_HEADER, EXAMPLE_SECRET, body, EXAMPLE_TIMESTAMP, 300),
        Ok(())
    );
    assert_eq!(
        webhook::verify(EXAMPLE_HEADER, EXAMPLE_SECRET, body, EXAMPLE_TIMESTAMP, 300),
        Ok(())
    );
}

#[test]
fn merchant_example_rejects_tampered_body_old_timestamp_and_wrong_secret() {
    let now = EXAMPLE_TIMESTAMP + 10;
    let tampered = EXAMPLE_BODY.replace("\"amount\":1999", "\"amount\":1");
    assert_eq!(
        verify(
            EXAMPLE_HEADER,
            EXAMPLE_SECRET,
            tampered.as_bytes(),
            now,
            300
        ),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        verify(
            EXAMPLE_HEADER,
            EXAMPLE_SECRET,
            EXAMPLE_BODY.as_bytes(),
            EXAMPLE_TIMESTAMP + 3600,
            300
        ),
        Err(VerifyError::StaleTimestamp)
    );
    assert_eq!(
        verify(
            EXAMPLE_HEADER,
            "whsec_not_the_right_secret",
            EXAMPLE_BODY.as_bytes(),
            now,
            300
        ),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        verify("v1=00", EXAMPLE_SECRET, EXAMPLE_BODY.as_bytes(), now, 300),
        Err(VerifyError::Malformed)
    );
}

#[test]
fn merchant_example_accepts_both_secrets_during_rotation() {
    let previous = "whsec_test_old_5f0a3c2d1e7b";
    let header = webhook::sign(
        &[EXAMPLE_SECRET, previous],
        EXAMPLE_TIMESTAMP,
        EXAMPLE_BODY.as_bytes(),
    );
    for secret in [EXAMPLE_SECRET, previous] {
        assert_eq!(
            verify(
                &header,
                secret,
                EXAMPLE_BODY.as_bytes(),
                EXAMPLE_TIMESTAMP,
                300
            ),
            Ok(())
        );
    }
}

#[test]
fn paygate_and_merchant_verifiers_agree_on_random_inputs() {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    for _ in 0..200 {
        let len = rng.gen_range(0..200);
        let body: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        let t = rng.gen_range(1_600_000_000..1_900_000_000i64);
        let header = webhook::sign(&[EXAMPLE_SECRET], t, &body);
        let now = t + rng.gen_range(-400..400);
        let mut tampered = body.clone();
        if let Some(b) = tampered.first_mut() {
            *b ^= 1;
        }
        for b in [&body, &tampered] {
            assert_eq!(
                verify(&header, EXAMPLE_SECRET, b, now, 300).is_ok(),
                webhook::verify(&header, EXAMPLE_SECRET, b, now, 300).is_ok()
            );
        }
    }
}

/// The worked example printed in docs/api.md and docs/webhooks.md is the one checked above,
/// byte for byte: a merchant copying it from either page gets a header that verifies.
#[test]
fn api_guide_and_webhook_guide_print_the_checked_worked_example() {
    let v1 = EXAMPLE_HEADER.split("v1=").nth(1).unwrap();
    for (page, text) in [
        ("docs/api.md", include_str!("../docs/api.md")),
        ("docs/webhooks.md", include_str!("../docs/webhooks.md")),
    ] {
        for (what, needle) in [
            ("secret", EXAMPLE_SECRET),
            ("body", EXAMPLE_BODY),
            ("header", EXAMPLE_HEADER),
            ("signature", v1),
        ] {
            assert!(text.contains(needle), "{page} lacks the example's {what}");
        }
        assert!(
            text.contains(&EXAMPLE_TIMESTAMP.to_string()),
            "{page}: timestamp"
        );
    }
}
