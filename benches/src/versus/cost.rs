//! What a side's measured work costs at on-demand prices: DynamoDB request
//! units (WRU and RRU, as the endpoint reported them in `ConsumedCapacity`)
//! and Lambda (GB-seconds of the measured processing time at the
//! template's memory size, and one invocation per batch).
//!
//! The defaults are the published us-east-1 prices (checked 2026-12-02):
//! DynamoDB on demand, since the price cut of 2024-11-01, $0.625 per
//! million write request units and $0.125 per million read request units
//! (<https://aws.amazon.com/dynamodb/pricing/on-demand/>); Lambda on arm64
//! (the template's `Architectures: [arm64]`), first tier, $0.0000133334 per
//! GB-second and $0.20 per million requests
//! (<https://aws.amazon.com/lambda/pricing/>). The template gives the stream
//! functions 256 MB.

use super::measure::Side;

/// Prices (flags of `versus`).
#[derive(clap::Args, Debug, Clone)]
pub struct Prices {
    /// Dollars per million write request units (DynamoDB on demand).
    #[arg(long, default_value_t = 0.625)]
    pub wru_price: f64,
    /// Dollars per million read request units (DynamoDB on demand).
    #[arg(long, default_value_t = 0.125)]
    pub rru_price: f64,
    /// Dollars per Lambda GB-second (arm64, first tier).
    #[arg(long, default_value_t = 0.000_013_333_4)]
    pub lambda_gb_second_price: f64,
    /// Dollars per million Lambda invocations.
    #[arg(long, default_value_t = 0.20)]
    pub lambda_request_price: f64,
    /// Memory of the function in MB (the template's stream functions).
    #[arg(long, default_value_t = 256)]
    pub lambda_memory_mb: u64,
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            wru_price: 0.625,
            rru_price: 0.125,
            lambda_gb_second_price: 0.000_013_333_4,
            lambda_request_price: 0.20,
            lambda_memory_mb: 256,
        }
    }
}

/// Dollars per million records.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    /// DynamoDB request units.
    pub dynamodb: f64,
    /// Lambda duration and invocations.
    pub lambda: f64,
    /// Lambda GB-seconds per million records.
    pub gb_seconds: f64,
}

impl Prices {
    /// What `side` costs per million of its `records`, delivered in
    /// batches of `batch`.
    pub fn cost(&self, side: &Side, records: usize, batch: usize) -> Cost {
        let per_million = 1e6 / records.max(1) as f64;
        let u = side.units();
        let dynamodb = (u.write * self.wru_price + u.read * self.rru_price) / 1e6 * per_million;
        let gb_seconds = self.lambda_memory_mb as f64 / 1024.0 * side.seconds * per_million;
        let invocations = records.div_ceil(batch.max(1)) as f64 * per_million;
        let lambda = gb_seconds * self.lambda_gb_second_price
            + invocations * self.lambda_request_price / 1e6;
        Cost {
            dynamodb,
            lambda,
            gb_seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use streamfold_shared::metrics::Units;

    #[test]
    fn a_million_wru_cost_the_wru_price() {
        let side = Side {
            seconds: 4.0,
            capacity: BTreeMap::from([(
                "PutItem".to_owned(),
                Units {
                    write: 1_000.0,
                    read: 2_000.0,
                },
            )]),
            ..Default::default()
        };
        let c = Prices::default().cost(&side, 1_000, 100);
        // 1 WRU and 2 RRU per record: $0.625 + $0.25 per million records.
        assert!((c.dynamodb - 0.875).abs() < 1e-9, "{c:?}");
        // 0.25 GB × 4 s per thousand records = 1,000 GB-s per million,
        // plus 10,000 invocations.
        assert!((c.gb_seconds - 1_000.0).abs() < 1e-9);
        assert!((c.lambda - (1_000.0 * 0.000_013_333_4 + 0.002)).abs() < 1e-9);
    }
}
