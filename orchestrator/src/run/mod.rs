//! The runner: the one owner of a run's state; emits run events.
