//! Assertion engine: SLO sources (Prometheus), windowed evaluation, verdicts.
