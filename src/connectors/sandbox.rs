//! PLACEHOLDER — implemented by the sandbox helper.
use super::*;
use crate::domain::{Order, PayAction, Refund};
use async_trait::async_trait;

pub struct SandboxConnector;
impl SandboxConnector {
    pub fn new(_s: &toml::Table, _env: ConnectorEnv) -> Result<Self, ConnectorError> {
        Ok(SandboxConnector)
    }
}
#[async_trait]
impl Connector for SandboxConnector {
    fn validate(&self, _o: &Order) -> Result<(), ConnectorError> {
        todo!()
    }
    async fn prepay(&self, _o: &Order) -> Result<PayAction, ConnectorError> {
        todo!()
    }
    async fn query(&self, _o: &Order) -> Result<QueryResult, ConnectorError> {
        todo!()
    }
    async fn close(&self, _o: &Order) -> Result<(), ConnectorError> {
        todo!()
    }
    async fn refund(&self, _o: &Order, _r: &Refund) -> Result<ProviderRefund, ConnectorError> {
        todo!()
    }
    async fn refund_query(
        &self,
        _o: &Order,
        _r: &Refund,
    ) -> Result<ProviderRefund, ConnectorError> {
        todo!()
    }
    fn parse_notification(&self, _raw: &RawCallback) -> Result<Notification, ConnectorError> {
        todo!()
    }
    fn ack(&self, _o: Result<(), &str>) -> Ack {
        todo!()
    }
}
