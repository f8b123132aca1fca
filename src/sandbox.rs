//! STUB: being written on branch `sandbox`.
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Region {
    Us,
    Eu,
}

#[derive(Debug, Clone)]
pub struct SandboxOptions {
    pub site_id: String,
    pub api_key: String,
    pub region: Region,
    pub limit: Option<u32>,
    pub retry_after: bool,
    pub latency: Duration,
    pub fail_rate: f64,
    pub drop_rate: f64,
    pub stall_rate: f64,
    pub stall_for: Duration,
    pub keep_requests: bool,
    pub seed: Option<u64>,
}
impl Default for SandboxOptions {
    fn default() -> Self {
        todo!()
    }
}
pub struct Sandbox;
impl Sandbox {
    pub async fn start(_o: SandboxOptions) -> std::io::Result<Sandbox> {
        todo!()
    }
    pub fn base_url(&self) -> String {
        todo!()
    }
    pub fn summary_line(&self) -> String {
        todo!()
    }
    pub async fn shutdown(self) {}
}
