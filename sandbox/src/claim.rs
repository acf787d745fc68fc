//! The experiment claim of a stack: at most one f3-chaos run injects faults into a sandbox stack
//! at a time, whatever store or daemon each run uses. The claim is an exclusive, non-blocking
//! `flock(2)` on `<state_dir>/<stack>/experiment.lock`, held for the run's whole life; the file
//! holds a description of the holder for whoever is refused. The kernel releases the lock when
//! the holder exits, however it exits (`kill -9` included), so a dead run never keeps the stack.

use std::fs;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use crate::state::StackPaths;

/// A held claim; dropping it releases the stack.
#[derive(Debug)]
pub struct ExperimentClaim {
    _lock: Flock<fs::File>,
}

/// Why a claim was not granted.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Another live process holds the stack.
    #[error("held by {holder}")]
    Busy {
        /// The holder's description, as it wrote it (e.g. run id, scenario, pid, host).
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Claims `stack` (under `state_dir`) for one run described by `holder` (one line of text),
/// without waiting.
///
/// # Errors
/// [`ClaimError::Busy`] with the current holder's description; [`ClaimError::Io`] when the
/// stack directory or lock file cannot be used.
pub fn claim_experiments(
    state_dir: &Path,
    stack: &str,
    holder: &str,
) -> Result<ExperimentClaim, ClaimError> {
    let paths = StackPaths::new(state_dir, stack);
    let path = paths.dir.join("experiment.lock");
    let io = |context: String| move |source: std::io::Error| ClaimError::Io { context, source };
    fs::create_dir_all(&paths.dir).map_err(io(format!("cannot create {}", paths.dir.display())))?;
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io(format!("cannot open {}", path.display())))?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = text.trim();
            return Err(ClaimError::Busy {
                holder: if holder.is_empty() {
                    "another process".to_owned()
                } else {
                    holder.to_owned()
                },
            });
        }
        Err((_, errno)) => {
            return Err(ClaimError::Io {
                context: format!("cannot lock {}", path.display()),
                source: errno.into(),
            });
        }
    };
    let file: &mut fs::File = &mut lock;
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{holder}"))
        .and_then(|()| file.flush())
        .map_err(io(format!("cannot write {}", path.display())))?;
    Ok(ExperimentClaim { _lock: lock })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_naming_the_holder_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = claim_experiments(dir.path(), "local", "run A (scenario x)").unwrap();
        match claim_experiments(dir.path(), "local", "run B") {
            Err(ClaimError::Busy { holder }) => assert_eq!(holder, "run A (scenario x)"),
            other => panic!("expected busy, got {other:?}"),
        }
        // Another stack is independent.
        let _other = claim_experiments(dir.path(), "other", "run C").unwrap();
        drop(first);
        let _second = claim_experiments(dir.path(), "local", "run B").unwrap();
    }
}
