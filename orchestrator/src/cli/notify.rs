//! `f3-chaos notify` (deliver the notification outbox by hand) and `f3-chaos digest --night D
//! [--send]` (print, and optionally queue and deliver, the morning digest).

use std::time::Duration;

use chrono::{NaiveDate, Utc};

use crate::exit_codes;
use crate::notify::{self, Notifiers};
use crate::scenario::Library;
use crate::store::Store;

/// Arguments of `f3-chaos notify`.
#[derive(Debug, clap::Args)]
#[command(after_help = crate::exit_codes::plain_help())]
pub struct NotifyArgs {
    /// `--config` and `--database-url`.
    #[command(flatten)]
    pub cfg: super::common::ConfigArgs,
    /// Keep delivering (retries included) until the outbox is empty or this long has passed,
    /// e.g. `2m`. Without it: one pass over what is due now.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub wait: Option<crate::duration::HumanDuration>,
}

/// Arguments of `f3-chaos digest`.
#[derive(Debug, clap::Args)]
#[command(after_help = crate::exit_codes::plain_help())]
pub struct DigestArgs {
    /// The night, `YYYY-MM-DD` (the window starting that local day); default: last night.
    #[arg(long)]
    pub night: Option<NaiveDate>,
    /// Queue one message per team and deliver them now (otherwise only print).
    #[arg(long)]
    pub send: bool,
    /// `--config` and `--database-url`.
    #[command(flatten)]
    pub cfg: super::common::ConfigArgs,
}

async fn open(cfg: &super::common::ConfigArgs) -> anyhow::Result<Result<(Library, Store), u8>> {
    let library = match super::common::load_runnable(&cfg.config) {
        Ok(runnable) => runnable.library,
        Err(code) => return Ok(Err(code)),
    };
    let store = cfg.open_store(Some(&library.config)).await?;
    Ok(Ok((library, store)))
}

/// Runs `f3-chaos notify`; returns the exit code (0 when nothing is left pending).
pub fn execute(args: NotifyArgs) -> anyhow::Result<u8> {
    let runtime = super::common::runtime()?;
    runtime.block_on(async {
        let (library, store) = match open(&args.cfg).await? {
            Ok(pair) => pair,
            Err(code) => return Ok(code),
        };
        let notifiers = Notifiers::from_config(&library.config);
        let deadline = args.wait.map(|w| tokio::time::Instant::now() + w.as_std());
        let pending = drain(&store, &notifiers, deadline).await?;
        Ok(if pending == 0 {
            exit_codes::PASSED
        } else {
            exit_codes::ERROR
        })
    })
}

/// Delivers what is due, then (until `deadline`) waits for retries; returns how many rows are
/// still pending. Prints one line per pass.
pub async fn drain(
    store: &Store,
    notifiers: &Notifiers,
    deadline: Option<tokio::time::Instant>,
) -> anyhow::Result<usize> {
    loop {
        let report = notify::deliver_due_with(store, notifiers, Utc::now()).await?;
        let pending = store
            .outbox_due(Utc::now() + chrono::Duration::days(3650), 10_000)
            .await?;
        eprintln!(
            "notify: {} delivered, {} retrying, {} given up, {} pending",
            report.delivered,
            report.retrying,
            report.dead,
            pending.len()
        );
        let Some(deadline) = deadline else {
            return Ok(pending.len());
        };
        let Some(next) = pending.iter().map(|r| r.next_attempt_at).min() else {
            return Ok(0);
        };
        let wait = (next - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_millis(50));
        if tokio::time::Instant::now() + wait > deadline {
            return Ok(pending.len());
        }
        tokio::time::sleep(wait).await;
    }
}

/// Runs `f3-chaos digest`; returns the exit code.
pub fn execute_digest(args: DigestArgs) -> anyhow::Result<u8> {
    let runtime = super::common::runtime()?;
    runtime.block_on(async {
        let (library, store) = match open(&args.cfg).await? {
            Ok(pair) => pair,
            Err(code) => return Ok(code),
        };
        let night = args.night.unwrap_or_else(|| {
            Utc::now()
                .with_timezone(&library.config.timezone)
                .date_naive()
        });
        let digests = notify::digest::build(&store, night, &library.config).await?;
        for digest in &digests {
            println!("[{}] {}", digest.team, digest.body.headline);
            for line in &digest.body.lines {
                println!("  • {line}");
            }
        }
        if args.send {
            let ids = notify::digest::queue(&store, night, &digests, Utc::now()).await?;
            eprintln!("digest: {} message(s) queued", ids.len());
            let notifiers = Notifiers::from_config(&library.config);
            drain(
                &store,
                &notifiers,
                Some(tokio::time::Instant::now() + Duration::from_secs(30)),
            )
            .await?;
        }
        Ok(exit_codes::PASSED)
    })
}
