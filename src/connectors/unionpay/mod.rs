//! UnionPay online gateway (全渠道 / 云闪付), protocol 5.1.0.

pub mod certs;
pub mod sign;
pub mod wire;

#[cfg(test)]
pub(crate) mod tests;
