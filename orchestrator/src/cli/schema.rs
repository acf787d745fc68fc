//! `f3-chaos schema`: prints the JSON Schema of scenario files (schemars), for editors such as
//! yaml-language-server (`# yaml-language-server: $schema=scenario.schema.json`).

/// Which file kind to describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaKind {
    /// `kind: Scenario` files.
    Scenario,
    /// `kind: SloCatalogue` files.
    SloCatalogue,
    /// `kind: Config` files.
    Config,
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
    let schema = match args.kind {
        SchemaKind::Scenario => crate::scenario::schema::scenario_schema(),
        SchemaKind::SloCatalogue => crate::scenario::schema::catalogue_schema(),
        SchemaKind::Config => crate::scenario::schema::config_schema(),
    };
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(crate::exit_codes::PASSED)
}
