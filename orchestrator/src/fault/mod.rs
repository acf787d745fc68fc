//! Fault drivers: the `FaultDriver` trait, the local (sandbox) driver and the Chaos Mesh driver.
