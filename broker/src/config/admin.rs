//! `[admin]` and `[metrics]`: the HTTP endpoint for operators and what it exports.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Address of the admin HTTP endpoint: `/metrics`, `/health`, `/ready`.
    pub listen: SocketAddr,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            listen: SocketAddr::from(([0, 0, 0, 0], 9644)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Per-partition series (log offsets, consumer lag) are exported for at most this
    /// many partitions, the first in topic order; 0 turns them off. Per-topic and
    /// per-group totals are always exported.
    pub max_partition_series: usize,
    /// How often gauges derived from broker state (offsets, lag, groups) refresh.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            max_partition_series: 2000,
            refresh_interval: Duration::from_secs(10),
        }
    }
}
