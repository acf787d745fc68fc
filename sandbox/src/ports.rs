//! The deterministic port layout of a stack: everything is an offset from `--port-base`
//! (default 19000), so the default stack `local` has Prometheus at `http://127.0.0.1:19090`.
//!
//! | offset | process |
//! |---|---|
//! | +0 | gateway |
//! | +1 | payment simulator |
//! | +10.. | gcp nodes (`+10 + i`) |
//! | +20.. | aws nodes |
//! | +30.. | azure nodes |
//! | +90 | Prometheus |
//! | +93 | Alertmanager (with `--alertmanager`) |

use crate::settings::CLOUDS;

/// The default port base.
pub const DEFAULT_PORT_BASE: u16 = 19000;
/// Most nodes per cloud the layout has room for.
pub const MAX_NODES_PER_CLOUD: u8 = 10;
/// Ports a stack may use: `port_base .. port_base + SPAN`.
pub const SPAN: u16 = 100;

/// Gateway port.
pub fn gateway(base: u16) -> u16 {
    base
}

/// Payment simulator port.
pub fn simulator(base: u16) -> u16 {
    base + 1
}

/// Port of node `index` of `cloud` (one of [`CLOUDS`]).
pub fn node(base: u16, cloud: &str, index: u8) -> u16 {
    let cloud_index = CLOUDS.iter().position(|c| *c == cloud).unwrap_or(0) as u16;
    base + 10 * (cloud_index + 1) + u16::from(index)
}

/// Prometheus port.
pub fn prometheus(base: u16) -> u16 {
    base + 90
}

/// Alertmanager port.
pub fn alertmanager(base: u16) -> u16 {
    base + 93
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_distinct_and_inside_the_span() {
        let base = DEFAULT_PORT_BASE;
        let mut all = vec![
            gateway(base),
            simulator(base),
            prometheus(base),
            alertmanager(base),
        ];
        for cloud in CLOUDS {
            for i in 0..MAX_NODES_PER_CLOUD {
                all.push(node(base, cloud, i));
            }
        }
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "no port used twice");
        assert!(all.iter().all(|p| (base..base + SPAN).contains(p)));
        assert_eq!(prometheus(19000), 19090, "config/local relies on this");
    }
}
