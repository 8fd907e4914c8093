//! Thin OS work, one concern per file. Everything that decides lives elsewhere.

pub mod cgroup;
pub mod codepages;
pub mod confine;
pub mod heartbeat;
pub mod launch;
pub mod logpipes;
pub mod logwriter;
pub mod notify;
pub mod proc;
pub mod reap;
pub mod signals;
pub mod spawn;
