//! Certificate mode (公钥证书模式): the SN derivation is a shared primitive.

pub use crate::protocol_primitives::cert_sn::{cert_sn, pem_certs, root_cert_sn};
