//! The published JSON Schemas (`docs/schemas/*.schema.json`) checked against what the binary
//! really prints and serves: every document a test reads goes through [`assert_valid`].

use std::path::PathBuf;

use serde_json::Value;

/// A published document schema.
#[derive(Debug, Clone, Copy)]
pub enum Document {
    /// `docs/schemas/run.schema.json`.
    Run,
    /// `docs/schemas/runs.schema.json`.
    Runs,
    /// `docs/schemas/gate.schema.json`.
    Gate,
    /// `docs/schemas/plan.schema.json`.
    Plan,
    /// `docs/schemas/webhook.schema.json`.
    Webhook,
}

impl Document {
    fn file(self) -> &'static str {
        match self {
            Document::Run => "run.schema.json",
            Document::Runs => "runs.schema.json",
            Document::Gate => "gate.schema.json",
            Document::Plan => "plan.schema.json",
            Document::Webhook => "webhook.schema.json",
        }
    }
}

/// Panics, naming every violation, unless `doc` validates against the published schema of
/// `kind` and carries `schemaVersion` 1.
pub fn assert_valid(kind: Document, doc: &Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/schemas")
        .join(kind.file());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text).expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{kind:?} document does not match {}:\n{}\n{doc:#}",
        path.display(),
        errors.join("\n")
    );
    assert_eq!(doc["schemaVersion"], 1, "{doc:#}");
}

#[test]
fn a_document_missing_a_required_field_is_refused() {
    // The check above can fail: the published run schema requires the run's status.
    let mut doc = serde_json::json!({
        "schemaVersion": 1, "runs": [{
            "id": "0190f5e2-7c3a-7d4e-8f00-123456789abc", "scenario": "s", "stack": "local",
            "night": null, "trigger": "cli", "startedBy": "me", "status": "passed",
            "reason": null, "startedAt": "2026-12-07T01:00:00Z", "endedAt": null,
            "durationSeconds": null, "passRate": null, "abortLatencyMs": null,
            "notifiedTeams": [], "scenarioDigest": null }]
    });
    assert_valid(Document::Runs, &doc);
    doc["runs"][0].as_object_mut().unwrap().remove("status");
    let refused = std::panic::catch_unwind(|| assert_valid(Document::Runs, &doc));
    assert!(refused.is_err(), "a run without a status passed the schema");
}
