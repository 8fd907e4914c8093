//! Where a child stopped before exec: [`Step`], and [`SpawnError`] (a step and errno).
//!
//! The child reports a failure across exec through a CLOEXEC pipe as one byte (`Step as
//! u8`) and the errno (`sys/launch.rs`, `REPORT_LEN`); the parent decodes the byte with
//! [`Step::from_u8`]. Both ends are the same binary, so the numbers are free to change;
//! the names are what users see (`cannot start: step "oomScoreAdj": Permission denied`).

/// Declares [`Step`] from one list (variant, optional wire value, name), so the enum, its
/// names and its decoding can never disagree.
macro_rules! steps {
    ($($(#[doc = $doc:literal])* $step:ident $(= $value:literal)? => $name:literal,)*) => {
        /// A step of the child between clone and exec, in the order the child takes them
        /// (the confinement steps in the order `confine::own` and `confine::join` run
        /// them; a test holds the order to this declaration).
        #[repr(u8)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub enum Step {
            $($(#[doc = $doc])* $step $(= $value)?,)*
        }

        impl Step {
            /// Every step, in declaration order.
            pub const ALL: &[Step] = &[$(Step::$step,)*];

            /// The step as named in error messages.
            pub fn name(self) -> &'static str {
                match self {
                    $(Step::$step => $name,)*
                }
            }

            /// The step a report's byte names (`None`: no step has that number).
            pub fn from_u8(byte: u8) -> Option<Step> {
                match byte {
                    $(b if b == Step::$step as u8 => Some(Step::$step),)*
                    _ => None,
                }
            }
        }
    };
}

steps! {
    UnshareMountNs => "unshare mount namespace",
    MakePrivate => "make mounts private",
    BindImageRoot => "bind the image root",
    OpenRoot => "open the new root",
    MountProc => "mount /proc",
    MountDev => "mount /dev",
    PopulateDev => "populate /dev",
    MountPts => "mount /dev/pts",
    MountRun => "mount /run",
    Bind => "bind",
    Mkdir => "mkdir",
    RemountRootReadonly => "remount the root read-only",
    PivotRoot => "pivot_root",
    UnshareNet => "unshare network namespace (net = none)",
    /// A probe's way in (`Join`), instead of all the steps above.
    EnterNamespaces => "enter the service's namespaces",
    Rlimits => "rlimits",
    OomScoreAdj => "oomScoreAdj",
    DropBounding => "drop the bounding set",
    KeepCaps => "keep capabilities across setuid",
    SetIds => "setgroups/setresgid/setresuid",
    SetCaps => "set capabilities",
    RaiseAmbient => "raise ambient capabilities",
    NoNewPrivileges => "noNewPrivileges",
    Cwd => "cwd",
    /// What every child does first (signal mask, cgroup, session, stdio).
    Setup = 254 => "setting up the child",
    /// `execve` itself.
    Exec = 255 => "exec",
}

/// Why a child did not reach its program: the step it stopped at and the errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpawnError {
    pub step: Step,
    pub errno: i32,
}

impl SpawnError {
    /// The error as `sys/executor.rs` reports it: `program` is what exec was given.
    pub fn describe(&self, program: &str) -> String {
        let error = std::io::Error::from_raw_os_error(self.errno);
        match self.step {
            Step::Exec => format!("{program}: {error}"),
            Step::Setup => format!("{}: {error}", Step::Setup.name()),
            step => format!("step \"{}\": {error}", step.name()),
        }
    }
}

/// A syscall's result (`Err`: its errno) as the step it belongs to.
pub trait At<T> {
    fn at(self, step: Step) -> Result<T, SpawnError>;
}

impl<T> At<T> for Result<T, i32> {
    fn at(self, step: Step) -> Result<T, SpawnError> {
        self.map_err(|errno| SpawnError { step, errno })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_round_trips_through_its_byte_and_has_its_own_name() {
        for (i, step) in Step::ALL.iter().enumerate() {
            assert_eq!(Step::from_u8(*step as u8), Some(*step));
            assert!(
                Step::ALL[..i].iter().all(|s| s.name() != step.name()),
                "{step:?}: name {:?} used twice",
                step.name()
            );
        }
        assert_eq!(Step::from_u8(Step::Cwd as u8 + 1), None);
        assert_eq!(Step::Exec as u8, 255);
        assert_eq!(Step::Setup as u8, 254);
    }

    #[test]
    fn errors_are_described_as_the_user_sees_them() {
        let e = |step, errno| SpawnError { step, errno };
        assert_eq!(
            e(Step::OomScoreAdj, libc::EACCES).describe("/bin/x"),
            "step \"oomScoreAdj\": Permission denied (os error 13)"
        );
        assert_eq!(
            e(Step::Exec, libc::ENOENT).describe("/bin/x"),
            "/bin/x: No such file or directory (os error 2)"
        );
        assert_eq!(
            e(Step::Setup, libc::EBADF).describe("/bin/x"),
            "setting up the child: Bad file descriptor (os error 9)"
        );
    }
}
