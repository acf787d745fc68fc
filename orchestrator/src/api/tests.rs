//! Unit tests of the API's pieces that need no server: tokens, roles, error answers.

use axum::http::StatusCode;
use axum::response::IntoResponse as _;

use super::ApiError;
use super::auth::{Caller, MIN_SECRET_LEN, TokenError, Tokens};
use crate::config::{ApiRole, ApiToken};

fn tokens() -> Tokens {
    Tokens::from_secrets([
        ("ro".to_owned(), ApiRole::Viewer, "viewer-secret".to_owned()),
        (
            "ci".to_owned(),
            ApiRole::Operator,
            "operator-secret".to_owned(),
        ),
    ])
    .unwrap()
}

#[test]
fn authenticate_finds_the_token_holder_and_nothing_else() {
    let tokens = tokens();
    assert_eq!(
        tokens.authenticate("operator-secret"),
        Some(Caller {
            name: "ci".into(),
            role: ApiRole::Operator
        })
    );
    assert_eq!(tokens.authenticate("operator-secre"), None);
    assert_eq!(tokens.authenticate("operator-secret "), None);
    assert_eq!(tokens.authenticate(""), None);
    assert!(Tokens::default().authenticate("anything").is_none());
    // Debug output never shows secrets or digests.
    let debug = format!("{tokens:?}");
    assert!(!debug.contains("secret"), "{debug}");
}

#[test]
fn duplicate_secrets_are_refused() {
    let err = Tokens::from_secrets([
        ("a".to_owned(), ApiRole::Viewer, "same".to_owned()),
        ("b".to_owned(), ApiRole::Admin, "same".to_owned()),
    ])
    .unwrap_err();
    assert!(matches!(err, TokenError::DuplicateSecret { .. }), "{err}");
}

#[test]
fn from_config_reads_secrets_from_the_environment() {
    // PATH is set (and long) in every test environment; setting variables needs `unsafe`.
    let path = std::env::var("PATH").unwrap();
    assert!(path.len() >= MIN_SECRET_LEN);
    let tokens = Tokens::from_config(&[ApiToken {
        name: "env-token".into(),
        role: ApiRole::Admin,
        token_env: "PATH".into(),
    }])
    .unwrap();
    assert_eq!(
        tokens.authenticate(&path).map(|c| c.role),
        Some(ApiRole::Admin)
    );

    let err = Tokens::from_config(&[ApiToken {
        name: "missing".into(),
        role: ApiRole::Viewer,
        token_env: "F3_CHAOS_SURELY_UNSET_TOKEN_VARIABLE".into(),
    }])
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("F3_CHAOS_SURELY_UNSET_TOKEN_VARIABLE"),
        "{err}"
    );
}

#[test]
fn roles_are_ordered_and_require_names_the_role_needed() {
    assert!(ApiRole::Viewer < ApiRole::Operator && ApiRole::Operator < ApiRole::Admin);
    let viewer = Caller {
        name: "ro".into(),
        role: ApiRole::Viewer,
    };
    assert!(viewer.require(ApiRole::Viewer, "reading").is_ok());
    match viewer.require(ApiRole::Operator, "starting a run") {
        Err(ApiError::Forbidden { needed, message }) => {
            assert_eq!(needed, Some(ApiRole::Operator));
            assert!(message.contains("operator"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unauthorized_carries_a_bearer_challenge_and_forbidden_a_role() {
    let response = ApiError::Unauthorized("unknown token").into_response();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let response = ApiError::Forbidden {
        needed: Some(ApiRole::Admin),
        message: "no".into(),
    }
    .into_response();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(!response.headers().contains_key("www-authenticate"));
}

#[test]
fn api_tokens_load_from_the_config_dir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("f3-chaos.yaml"),
        "apiVersion: f3-chaos/v1\nkind: Config\nspec:\n  api:\n    tokens:\n      - { name: ci, role: operator, tokenEnv: F3_CHAOS_TOKEN_CI }\n      - { name: sre, role: admin, tokenEnv: F3_CHAOS_TOKEN_SRE }\n",
    )
    .unwrap();
    let config = crate::config::load(dir.path()).unwrap();
    assert_eq!(
        config.api_tokens,
        vec![
            ApiToken {
                name: "ci".into(),
                role: ApiRole::Operator,
                token_env: "F3_CHAOS_TOKEN_CI".into()
            },
            ApiToken {
                name: "sre".into(),
                role: ApiRole::Admin,
                token_env: "F3_CHAOS_TOKEN_SRE".into()
            },
        ]
    );
    std::fs::write(
        dir.path().join("f3-chaos.yaml"),
        "apiVersion: f3-chaos/v1\nkind: Config\nspec:\n  api:\n    tokens:\n      - { name: ci, role: operator, tokenEnv: \"s3cr3t value\" }\n",
    )
    .unwrap();
    assert!(crate::config::load(dir.path()).is_err());
}
