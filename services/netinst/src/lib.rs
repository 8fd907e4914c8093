//! Network instances (DESIGN.md "Network instances"): one TOML per instance in a
//! watched directory. Being written (issue 5).
