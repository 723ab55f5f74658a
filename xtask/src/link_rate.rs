//! [`LinkRate`]: the rate of a rate-limited path as a plain flow measured
//! it, the reference of the bottleneck and fairness rows.

use serde::Serialize;

/// The rate of a rate-limited path, measured with a plain flow.
#[derive(Debug, Clone, Serialize)]
pub struct LinkRate {
    /// Bytes per second, when the flow measured one.
    pub bytes_per_second: Option<f64>,
    /// How it was measured, or why it was not.
    pub how: String,
}
