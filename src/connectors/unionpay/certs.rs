//! Validation of `signPubKeyCert`, the certificate UnionPay sends with every 5.1.0 response
//! and notification. Its key is used only once the certificate has passed, in this order
//! (any failure = the signature is invalid), the checks of UnionPay's official 5.1.0 SDKs
//! (Java `acpsdk` `CertUtil.verifyAndGetVerifyPubKey`, PHP `cert_util.php`, .NET `CertUtil.cs`):
//!
//! 1. it parses as an X.509 certificate (PEM as received, CRLF line breaks);
//! 2. the given time lies within its validity (and within the middle certificate's);
//! 3. it chains to the configured middle certificate, and that to the configured root
//!    (`acp_prod_middle.cer` / `acp_prod_root.cer` in production, `acp_test_*` on the test
//!    gateway): issuer name = subject name and the issuer's RSA signature over the
//!    TBSCertificate verifies. UnionPay's CA certificates are signed SHA1withRSA, which
//!    generic path builders refuse, so each link is verified here explicitly; revocation is
//!    not checked (the SDKs switch it off);
//! 4. the owner field of its subject CN (`041@<id>@<owner>@<seq>`, the third `@` field) is
//!    `中国银联股份有限公司`. With `validate_cn_owner = false` (UnionPay's test environment
//!    setting, never production) the owner of older test certificates, `00040000:SIGN`, is
//!    accepted as well.

use ring::signature::{self as ring_sig, UnparsedPublicKey};
use x509_parser::certificate::X509Certificate;

use crate::protocol_primitives::rsa::RsaPublicKey;

/// The owner UnionPay's signing certificates name (`SDKConstants.UNIONPAY_CNNAME`).
pub const UNIONPAY_OWNER: &str = "中国银联股份有限公司";
/// The owner field of older test-environment UnionPay certificates (lenient mode only).
pub const TEST_ENV_OWNER: &str = "00040000:SIGN";

const SHA1_WITH_RSA: &str = "1.2.840.113549.1.1.5";
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("signPubKeyCert is not a certificate: {0}")]
    Unparseable(String),
    #[error("{which} certificate is not valid at this time (valid {from} .. {to} unix seconds)")]
    OutsideValidity {
        which: &'static str,
        from: i64,
        to: i64,
    },
    #[error("signPubKeyCert does not chain to the configured UnionPay certificates: {0}")]
    Chain(String),
    #[error("signPubKeyCert owner {0:?} is not UnionPay's")]
    Owner(String),
    #[error("UnionPay CA certificates: {0}")]
    Config(String),
}

/// Which CN owners are accepted (`acpsdk.ifValidateCNName`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerCheck {
    /// Production: exactly [`UNIONPAY_OWNER`].
    Strict,
    /// Test environment: [`UNIONPAY_OWNER`] or [`TEST_ENV_OWNER`].
    TestEnvironment,
}

impl OwnerCheck {
    /// Whether a certificate whose CN owner field is `owner` may sign for UnionPay.
    pub fn accepts(self, owner: &str) -> bool {
        match self {
            OwnerCheck::Strict => owner == UNIONPAY_OWNER,
            OwnerCheck::TestEnvironment => owner == UNIONPAY_OWNER || owner == TEST_ENV_OWNER,
        }
    }
}

/// The configured UnionPay root and middle certificates (DER) and the owner rule.
#[derive(Clone)]
pub struct Trust {
    root: Vec<u8>,
    middle: Vec<u8>,
    owner: OwnerCheck,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Trust(owner {:?})", self.owner)
    }
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err("trailing bytes after the certificate".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// The DER of the single `CERTIFICATE` PEM block in `text`.
pub fn pem_to_der(text: &str) -> Result<Vec<u8>, String> {
    let block = pem::parse(text.trim()).map_err(|e| format!("bad PEM ({e})"))?;
    if block.tag() != "CERTIFICATE" {
        return Err(format!(
            "expected a CERTIFICATE PEM, found `{}`",
            block.tag()
        ));
    }
    Ok(block.into_contents())
}

impl Trust {
    /// Checks at start-up that the middle certificate is a CA issued by the root and the
    /// root a self-signed CA, so a misconfiguration is found before the first message.
    pub fn new(root_pem: &str, middle_pem: &str, owner: OwnerCheck) -> Result<Self, CertError> {
        let root = pem_to_der(root_pem).map_err(|e| CertError::Config(format!("root: {e}")))?;
        let middle =
            pem_to_der(middle_pem).map_err(|e| CertError::Config(format!("middle: {e}")))?;
        {
            let r = parse(&root).map_err(|e| CertError::Config(format!("root: {e}")))?;
            let m = parse(&middle).map_err(|e| CertError::Config(format!("middle: {e}")))?;
            for (which, c) in [("root", &r), ("middle", &m)] {
                if !is_ca(c) {
                    return Err(CertError::Config(format!(
                        "{which} is not a CA certificate"
                    )));
                }
            }
            signed_by(&r, &r).map_err(|e| CertError::Config(format!("root: {e}")))?;
            signed_by(&m, &r).map_err(|e| CertError::Config(format!("middle: {e}")))?;
        }
        Ok(Trust {
            root,
            middle,
            owner,
        })
    }

    pub fn owner_check(&self) -> OwnerCheck {
        self.owner
    }

    /// Validates `signPubKeyCert` at `now` (unix seconds) and returns its public key.
    pub fn validate(&self, sign_pub_key_cert: &str, now: i64) -> Result<RsaPublicKey, CertError> {
        let der = pem_to_der(sign_pub_key_cert).map_err(CertError::Unparseable)?;
        let leaf = parse(&der).map_err(CertError::Unparseable)?;
        let middle = parse(&self.middle).map_err(CertError::Config)?;
        let root = parse(&self.root).map_err(CertError::Config)?;
        within_validity("signPubKeyCert", &leaf, now)?;
        within_validity("middle", &middle, now)?;
        signed_by(&leaf, &middle).map_err(CertError::Chain)?;
        signed_by(&middle, &root).map_err(CertError::Chain)?;
        let owner = owner_of(&leaf).unwrap_or_default();
        if !self.owner.accepts(&owner) {
            return Err(CertError::Owner(owner));
        }
        RsaPublicKey::from_spki(leaf.public_key())
            .map_err(|e| CertError::Unparseable(e.to_string()))
    }
}

/// The third `@`-separated field of the subject CN, if there are at least three.
pub fn owner_of(cert: &X509Certificate<'_>) -> Option<String> {
    let attr = cert.subject().iter_common_name().next()?;
    // CFCA writes some CNs as T61String (`@` is not printable), which is UTF-8 / ASCII
    // bytes in practice; read those bytes as the SDKs' string conversions do.
    let cn = match attr.as_str() {
        Ok(s) => s.to_string(),
        Err(_) => String::from_utf8_lossy(attr.attr_value().data).into_owned(),
    };
    cn.split('@').nth(2).map(str::to_string)
}

fn is_ca(cert: &X509Certificate<'_>) -> bool {
    matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
}

fn within_validity(
    which: &'static str,
    cert: &X509Certificate<'_>,
    now: i64,
) -> Result<(), CertError> {
    let v = cert.validity();
    let (from, to) = (v.not_before.timestamp(), v.not_after.timestamp());
    if (from..=to).contains(&now) {
        Ok(())
    } else {
        Err(CertError::OutsideValidity { which, from, to })
    }
}

/// `cert`'s issuer is `issuer` (by name) and `issuer`'s key verifies `cert`'s signature.
fn signed_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> Result<(), String> {
    if cert.issuer().as_raw() != issuer.subject().as_raw() {
        return Err(format!(
            "issued by `{}`, not by `{}`",
            cert.issuer(),
            issuer.subject()
        ));
    }
    let alg: &dyn ring_sig::VerificationAlgorithm =
        match cert.signature_algorithm.algorithm.to_id_string().as_str() {
            SHA1_WITH_RSA => &ring_sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            SHA256_WITH_RSA => &ring_sig::RSA_PKCS1_2048_8192_SHA256,
            other => {
                return Err(format!(
                    "unsupported certificate signature algorithm {other}"
                ))
            }
        };
    let key = &issuer.public_key().subject_public_key.data;
    UnparsedPublicKey::new(alg, key)
        .verify(cert.tbs_certificate.as_ref(), &cert.signature_value.data)
        .map_err(|_| format!("the signature of `{}` does not verify", cert.subject()))
}
