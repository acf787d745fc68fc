//! Test helper: a throwaway PostgreSQL database (URL from `F3_CHAOS_TEST_POSTGRES_URL`).
//!
//! [`TestDatabase::create`] connects to the admin URL (a role with `CREATEDB`; `scripts/test.sh`
//! creates it), creates `f3chaos_test_<random>` and drops it again when the guard is dropped. If
//! PostgreSQL is not reachable the test panics with instructions: the PostgreSQL tests must fail,
//! never pass silently, when the server is missing.

use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};

/// Environment variable holding the admin URL.
pub const ADMIN_URL_ENV: &str = "F3_CHAOS_TEST_POSTGRES_URL";

/// Admin URL used when the variable is not set (what `scripts/test.sh` sets up).
pub const DEFAULT_ADMIN_URL: &str = "postgres://f3chaos:f3chaos@127.0.0.1:5432/postgres";

/// A fresh, empty database; dropped (with its connections) when this value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    /// URL of the fresh database (same credentials as the admin URL).
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates a fresh empty database.
    ///
    /// # Panics
    /// When PostgreSQL is unreachable or the role may not create databases — with a message
    /// naming the URL and how to start the server.
    pub async fn create() -> TestDatabase {
        let admin_url = admin_url();
        let name = format!("f3chaos_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = connect_admin(&admin_url).await;
        admin
            .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "Could not create test database {name} as {}: {error}",
                    f3_chaos::store::redact_url(&admin_url)
                )
            });
        let _ = admin.close().await;
        let mut url = url::Url::parse(&admin_url).expect("admin URL parsed once already");
        url.set_path(&name);
        TestDatabase {
            url: url.to_string(),
            name,
            admin_url,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop cannot await, and may run inside a runtime: use a private one on its own thread.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime builds");
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                admin
                    .execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
                    .await?;
                admin.close().await
            })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!(
                "warning: could not drop test database {}: {error}",
                self.name
            );
        }
    }
}

/// The admin URL: `$F3_CHAOS_TEST_POSTGRES_URL` or [`DEFAULT_ADMIN_URL`].
pub fn admin_url() -> String {
    std::env::var(ADMIN_URL_ENV)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned())
}

async fn connect_admin(admin_url: &str) -> PgConnection {
    let connected =
        tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(admin_url)).await;
    match connected {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => panic!("{}", unreachable_message(admin_url, &error.to_string())),
        Err(_) => panic!("{}", unreachable_message(admin_url, "timed out after 10 s")),
    }
}

fn unreachable_message(admin_url: &str, error: &str) -> String {
    format!(
        "PostgreSQL is not reachable at {} ({error}).\n\
         The store tests need a real PostgreSQL: run scripts/test.sh (it installs and starts \
         PostgreSQL and creates the f3chaos role), or start it yourself \
         (`pg_ctlcluster 15 main start`) and set {ADMIN_URL_ENV} to a role with CREATEDB.",
        f3_chaos::store::redact_url(admin_url)
    )
}
