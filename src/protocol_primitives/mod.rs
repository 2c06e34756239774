//! Building blocks below the level of any provider protocol, shared by connectors and the
//! simulators of their providers. A simulator must implement its provider's messages, strings
//! to sign and validation itself (otherwise the contract tests only show that one piece of
//! code agrees with itself), but RSA, AES-GCM, HMAC and the clock formats providers document are
//! not where the two sides could disagree about the protocol, so they live here once.

pub mod aes_gcm;
pub mod beijing_time;
pub mod cert_sn;
pub mod emv;
pub mod hmac;
pub mod keys;
pub mod rsa;
