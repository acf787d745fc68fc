//! Nightly window planner: packs scenarios into the chaos window across stacks.
