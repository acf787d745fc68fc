//! What f3-chaos tells the platform's other tools about a fault window: Alertmanager silences
//! the stack's alerts while faults are active ([`alertmanager`]), Grafana annotates the window on
//! dashboards ([`grafana`]). These are the clients; the runner uses them through its
//! fault-window hooks (`run::hooks`: before injection, after injection, after the last revert).

pub mod alertmanager;
pub mod grafana;
