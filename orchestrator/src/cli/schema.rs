//! `f3-chaos schema`: prints a JSON Schema (schemars, draft 2020-12): of scenario, catalogue and
//! config files, for editors such as yaml-language-server
//! (`# yaml-language-server: $schema=scenario.schema.json`), and of the JSON documents f3-chaos
//! prints, serves and sends ([`crate::document`], the webhook body), published under
//! `docs/schemas/`.

/// Which file kind to describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaKind {
    /// `kind: Scenario` files.
    Scenario,
    /// `kind: SloCatalogue` files.
    SloCatalogue,
    /// `kind: Config` files.
    Config,
    /// The run document (`run`/`results ID --output json`, `GET /api/v1/runs/{id}`).
    Run,
    /// The run list (`results --output json`, `GET /api/v1/runs`).
    Runs,
    /// The gate decision (`gate --output json`).
    Gate,
    /// The plan (`plan --output json`).
    Plan,
    /// The generic webhook's body (notifications to a `kind: webhook` route).
    Webhook,
}

impl SchemaKind {
    /// The schema of this kind.
    pub fn schema(self) -> serde_json::Value {
        match self {
            SchemaKind::Scenario => crate::scenario::schema::scenario_schema(),
            SchemaKind::SloCatalogue => crate::scenario::schema::catalogue_schema(),
            SchemaKind::Config => crate::scenario::schema::config_schema(),
            SchemaKind::Run => crate::document::run_schema(),
            SchemaKind::Runs => crate::document::run_list_schema(),
            SchemaKind::Gate => crate::document::gate_schema(),
            SchemaKind::Plan => crate::plan::plan_schema(),
            SchemaKind::Webhook => crate::notify::webhook::webhook_schema(),
        }
    }

    /// Where the repository publishes it (`None`: not published as a file).
    pub fn published_at(self) -> Option<&'static str> {
        match self {
            SchemaKind::Scenario => Some("docs/scenario.schema.json"),
            SchemaKind::SloCatalogue | SchemaKind::Config => None,
            SchemaKind::Run => Some("docs/schemas/run.schema.json"),
            SchemaKind::Runs => Some("docs/schemas/runs.schema.json"),
            SchemaKind::Gate => Some("docs/schemas/gate.schema.json"),
            SchemaKind::Plan => Some("docs/schemas/plan.schema.json"),
            SchemaKind::Webhook => Some("docs/schemas/webhook.schema.json"),
        }
    }
}

/// Arguments of `f3-chaos schema`.
#[derive(Debug, clap::Args)]
#[command(after_help = crate::exit_codes::plain_help())]
pub struct SchemaArgs {
    /// The file kind (default: scenario).
    #[arg(long, value_enum, default_value_t = SchemaKind::Scenario)]
    pub kind: SchemaKind,
}

/// Runs the command; returns the exit code.
pub fn execute(args: SchemaArgs) -> anyhow::Result<u8> {
    let schema = args.kind.schema();
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(crate::exit_codes::PASSED)
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum as _;

    use super::SchemaKind;

    /// Every published schema file is what `f3-chaos schema --kind K` prints now.
    #[test]
    fn published_schemas_are_up_to_date() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("repository root");
        for kind in SchemaKind::value_variants() {
            let Some(path) = kind.published_at() else {
                continue;
            };
            let shipped = std::fs::read_to_string(repo.join(path)).unwrap_or_default();
            let current = serde_json::to_string_pretty(&kind.schema()).expect("serialises") + "\n";
            let name = kind
                .to_possible_value()
                .expect("named")
                .get_name()
                .to_owned();
            assert!(
                shipped == current,
                "{path} is stale: run `f3-chaos schema --kind {name} > {path}`"
            );
        }
    }
}
