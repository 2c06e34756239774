//! Alipay's certificate SNs (公钥证书模式): `app_cert_sn`, `alipay_cert_sn` and
//! `alipay_root_cert_sn` are a documented digest of a certificate, derived exactly as Alipay's
//! SDKs do (a primitive like a hash: both the merchant and the provider compute the same one), because Alipay compares them as opaque
//! strings: md5_hex(issuer DN, most specific RDN first, `k=v` joined by `,` + serial in
//! decimal). Certificate validity is deliberately not checked here: Alipay rotates its
//! certificate and publishes the new one through the response's `alipay_cert_sn`.

use md5::{Digest, Md5};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::oid::Oid;

use super::rsa::KeyError;

const SHA1_WITH_RSA: &str = "1.2.840.113549.1.1.5";
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";

/// DER bodies of every `CERTIFICATE` block in a PEM bundle, in file order.
pub fn pem_certs(text: &str) -> Result<Vec<Vec<u8>>, KeyError> {
    let blocks = pem::parse_many(text)
        .map_err(|e| KeyError::Unusable(format!("certificate bundle: bad PEM ({e})")))?;
    let certs: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(|p| p.into_contents())
        .collect();
    if certs.is_empty() {
        return Err(KeyError::Unusable(
            "certificate file holds no CERTIFICATE block".into(),
        ));
    }
    Ok(certs)
}

/// `app_cert_sn` (and `alipay_cert_sn`): the SN of the first certificate in `pem_text`.
pub fn cert_sn(pem_text: &str) -> Result<String, KeyError> {
    let der = pem_certs(pem_text)?.remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| KeyError::Unusable(format!("certificate: {e}")))?;
    Ok(sn_of(&cert))
}

/// `alipay_root_cert_sn`: the SNs of the RSA-signed certificates of the root bundle
/// (SM2 and ECDSA ones are skipped, as the SDKs do), joined with `_` in file order.
pub fn root_cert_sn(pem_text: &str) -> Result<String, KeyError> {
    let mut sns = Vec::new();
    for der in pem_certs(pem_text)? {
        // A certificate this parser cannot read cannot be RSA-signed in a way the
        // gateway counts either; the SDKs skip what openssl cannot parse.
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
            continue;
        };
        let alg = cert.signature_algorithm.algorithm.to_id_string();
        if alg == SHA1_WITH_RSA || alg == SHA256_WITH_RSA {
            sns.push(sn_of(&cert));
        }
    }
    if sns.is_empty() {
        return Err(KeyError::Unusable(
            "root certificate bundle holds no RSA-signed certificate".into(),
        ));
    }
    Ok(sns.join("_"))
}

fn sn_of(cert: &X509Certificate<'_>) -> String {
    let mut attrs = Vec::new();
    for rdn in cert.issuer().iter_rdn() {
        for atv in rdn.iter() {
            let value = atv
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|_| String::from_utf8_lossy(atv.attr_value().data).into_owned());
            attrs.push(format!("{}={}", short_name(atv.attr_type()), value));
        }
    }
    attrs.reverse();
    let input = format!("{}{}", attrs.join(","), decimal(cert.raw_serial()));
    hex::encode(Md5::digest(input.as_bytes()))
}

/// openssl's short names, which is what the SDKs' `openssl_x509_parse` yields.
fn short_name(oid: &Oid<'_>) -> String {
    match oid.to_id_string().as_str() {
        "2.5.4.3" => "CN".into(),
        "2.5.4.6" => "C".into(),
        "2.5.4.7" => "L".into(),
        "2.5.4.8" => "ST".into(),
        "2.5.4.9" => "street".into(),
        "2.5.4.10" => "O".into(),
        "2.5.4.11" => "OU".into(),
        "2.5.4.5" => "serialNumber".into(),
        "1.2.840.113549.1.9.1" => "emailAddress".into(),
        "0.9.2342.19200300.100.1.25" => "DC".into(),
        "0.9.2342.19200300.100.1.1" => "UID".into(),
        other => other.into(),
    }
}

/// Big-endian unsigned bytes → decimal string, without a bignum crate.
fn decimal(bytes: &[u8]) -> String {
    let mut digits: Vec<u8> = vec![0]; // little-endian base-10 digits
    for &b in bytes {
        let mut carry = b as u32;
        for d in digits.iter_mut() {
            let v = *d as u32 * 256 + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    while digits.len() > 1 && *digits.last().unwrap() == 0 {
        digits.pop();
    }
    digits.iter().rev().map(|d| (b'0' + d) as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_conversion() {
        assert_eq!(decimal(&[0]), "0");
        assert_eq!(decimal(&[1, 0]), "256");
        // AL-5: the ysd app certificate's serial 0x20230607CAA8B2E6DD943115CD903930.
        assert_eq!(
            decimal(&hex::decode("20230607CAA8B2E6DD943115CD903930").unwrap()),
            "42717148566940702771351790021258524976"
        );
        assert_eq!(decimal(&u128::MAX.to_be_bytes()), u128::MAX.to_string());
    }
}
