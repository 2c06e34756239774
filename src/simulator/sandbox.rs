//! PLACEHOLDER — implemented by the sandbox helper.
use super::*;
pub struct SandboxSimulator;
impl SandboxSimulator {
    pub fn new(_s: &toml::Table, _env: SimEnv) -> Result<Self, SimError> {
        Ok(SandboxSimulator)
    }
}
#[async_trait]
impl Simulator for SandboxSimulator {
    fn routes(self: Arc<Self>, _cfg: &mut web::ServiceConfig) {}
    async fn pay(&self, _order: &Order, _opts: PayOptions) -> Result<PayOutcome, SimError> {
        todo!()
    }
}
