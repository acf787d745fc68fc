//! The JSON Schema of scenario files (`f3-chaos schema`), derived with schemars from the raw
//! model, for editors (yaml-language-server: `# yaml-language-server: $schema=…`).

/// The JSON Schema (draft 2020-12) of a `kind: Scenario` file.
pub fn scenario_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(super::raw::RawScenarioFile);
    schema.to_value()
}

/// The JSON Schema of a `kind: SloCatalogue` file.
pub fn catalogue_schema() -> serde_json::Value {
    schemars::schema_for!(super::raw::RawCatalogueFile).to_value()
}

/// The JSON Schema of a `kind: Config` file.
pub fn config_schema() -> serde_json::Value {
    schemars::schema_for!(crate::config::raw::RawConfigFile).to_value()
}
