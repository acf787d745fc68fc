//! Test helper: a real Prometheus process on loopback scraping a controllable exporter.
