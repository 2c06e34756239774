use super::*;

fn fx(name: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}/src/protocol_primitives/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

fn file(name: &str) -> KeySource {
    KeySource::File(fx(name))
}

fn cert_key() -> RsaPublicKey {
    RsaPublicKey::from_text(&std::fs::read_to_string(fx("TEST_ONLY_signing_cert.pem")).unwrap())
        .unwrap()
}

#[test]
fn pem_pkcs8_and_pkcs1_load_the_same_key() {
    for name in [
        "TEST_ONLY_signing_key_pkcs8.pem",
        "TEST_ONLY_signing_key_pkcs1.pem",
    ] {
        let key = load_signing_key(&file(name), None).unwrap();
        assert_eq!(key.signer.public_key(), cert_key(), "{name}");
        assert!(key.certificate.is_none());
        let sig = key.signer.sign(b"message");
        assert!(cert_key().verify(b"message", &sig));
    }
}

#[test]
fn legacy_and_aes_pfx_give_the_key_and_its_certificate_serial() {
    for name in ["TEST_ONLY_signing_legacy.pfx", "TEST_ONLY_signing_aes.pfx"] {
        let key = load_signing_key(&file(name), Some("test-only")).unwrap();
        assert_eq!(key.signer.public_key(), cert_key(), "{name}");
        assert_eq!(
            key.certificate_serial_decimal().as_deref(),
            Some("78187493520"),
            "{name}"
        );
    }
}

#[test]
fn pfx_from_an_environment_variable_as_base64() {
    let der = std::fs::read(fx("TEST_ONLY_signing_legacy.pfx")).unwrap();
    let var = "PAYGATE_TEST_ONLY_KEYS_PFX_B64";
    std::env::set_var(var, B64.encode(&der));
    let key = load_signing_key(&KeySource::Env(var.into()), Some("test-only")).unwrap();
    assert_eq!(key.signer.public_key(), cert_key());
    std::env::remove_var(var);
}

#[test]
fn pem_from_an_environment_variable() {
    let var = "PAYGATE_TEST_ONLY_KEYS_PEM";
    std::env::set_var(
        var,
        std::fs::read_to_string(fx("TEST_ONLY_signing_key_pkcs1.pem")).unwrap(),
    );
    let key = load_signing_key(&KeySource::Env(var.into()), None).unwrap();
    assert_eq!(key.signer.public_key(), cert_key());
    std::env::remove_var(var);
}

#[test]
fn wrong_password_is_named() {
    for name in ["TEST_ONLY_signing_legacy.pfx", "TEST_ONLY_signing_aes.pfx"] {
        let err = load_signing_key(&file(name), Some("not-it")).unwrap_err();
        assert_eq!(err, KeysError::WrongPassword, "{name}");
    }
}

#[test]
fn typed_errors_for_unusable_sources() {
    assert!(matches!(
        load_signing_key(&file("no_such_file.pem"), None),
        Err(KeysError::Unreadable { .. })
    ));
    assert!(matches!(
        load_signing_key(&KeySource::Env("PAYGATE_TEST_ONLY_UNSET_VAR".into()), None),
        Err(KeysError::Unreadable { .. })
    ));
    // A PFX without its password, a PEM with one, a certificate instead of a key.
    assert!(matches!(
        load_signing_key(&file("TEST_ONLY_signing_legacy.pfx"), None),
        Err(KeysError::Format(_))
    ));
    assert!(matches!(
        load_signing_key(&file("TEST_ONLY_signing_key_pkcs8.pem"), Some("x")),
        Err(KeysError::Format(_))
    ));
    assert!(matches!(
        load_signing_key(&file("TEST_ONLY_signing_cert.pem"), None),
        Err(KeysError::Unusable(_))
    ));
    assert!(matches!(
        parse_signing_key(b"0\x03\x02\x01\x03", Some("x")),
        Err(KeysError::Pkcs12(_))
    ));
}

#[test]
fn settings_pair_needs_exactly_one() {
    assert_eq!(
        KeySource::from_settings("k", Some("a.pem"), None).unwrap(),
        KeySource::File("a.pem".into())
    );
    assert_eq!(
        KeySource::from_settings("k", None, Some("VAR")).unwrap(),
        KeySource::Env("VAR".into())
    );
    assert!(KeySource::from_settings("k", None, None).is_err());
    assert!(KeySource::from_settings("k", Some("a"), Some("b")).is_err());
}

#[test]
fn debug_never_shows_key_material() {
    let key = load_signing_key(&file("TEST_ONLY_signing_aes.pfx"), Some("test-only")).unwrap();
    let shown = format!("{key:?}");
    assert!(shown.contains("redacted"), "{shown}");
}
