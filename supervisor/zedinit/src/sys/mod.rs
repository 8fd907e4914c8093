//! Thin OS work, one concern per file. Everything that decides lives elsewhere.

pub mod cgroup;
pub mod codepages;
pub mod confine;
pub mod executor;
pub mod heartbeat;
pub mod launch;
pub mod leftovers;
pub mod notify;
pub mod output_pipes;
pub mod output_writer;
pub mod pid1;
pub mod proc;
pub mod raw;
pub mod reap;
