//! supctl's library: what its verbs need beyond the control protocol (`zedctr-proto`):
//! - [`export`]: `supctl export linuxkit` (build.yml's reader and the YAML writer);
//! - [`fuzzing`]: the export's fuzz targets (`fuzz/`), replayed by the tests.

pub mod export;
pub mod fuzzing;
