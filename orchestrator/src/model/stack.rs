//! The shape of a stack: its clouds and the kind of environment it is.

use serde::Serialize;

/// A cloud of a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cloud {
    /// Google Cloud.
    Gcp,
    /// Amazon Web Services.
    Aws,
    /// Microsoft Azure.
    Azure,
}

impl Cloud {
    /// All clouds, in a fixed order.
    pub const ALL: [Cloud; 3] = [Cloud::Gcp, Cloud::Aws, Cloud::Azure];

    /// Lower-case name (`gcp`, `aws`, `azure`), as used in labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Gcp => "gcp",
            Cloud::Aws => "aws",
            Cloud::Azure => "azure",
        }
    }
}

/// Kind of environment; production needs explicit opt-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Environment {
    /// Production: only scenarios with `allowProduction: true`, only by admins.
    Production,
    /// User acceptance testing.
    Uat,
    /// Development / integration.
    Dev,
    /// The bundled local sandbox.
    Local,
}
