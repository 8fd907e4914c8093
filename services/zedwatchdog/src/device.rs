//! The watchdog device: any write pings it; a `V` written before closing disarms it
//! (the kernel's "magic close", unless the driver was built with nowayout).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

nix::ioctl_readwrite!(wdioc_settimeout, b'W', 6, nix::libc::c_int);
nix::ioctl_read!(wdioc_getsupport, b'W', 0, WatchdogInfo);
nix::ioctl_read!(wdioc_getbootstatus, b'W', 2, nix::libc::c_int);
nix::ioctl_read!(wdioc_gettimeout, b'W', 7, nix::libc::c_int);

/// `struct watchdog_info` (linux/watchdog.h).
#[repr(C)]
#[derive(Default)]
pub struct WatchdogInfo {
    options: u32,
    firmware_version: u32,
    identity: [u8; 32],
}

/// What the driver says it is and can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Support {
    pub identity: String,
    pub firmware_version: u32,
    /// `WDIOF_*` bits: what the driver can do (and report, e.g. CARDRESET).
    pub options: u32,
}

pub struct Device {
    file: File,
}

impl Device {
    /// Opens the device: from here on, the device reboots unless fed.
    pub fn open(path: &Path) -> io::Result<Device> {
        let file = OpenOptions::new().write(true).open(path)?;
        Ok(Device { file })
    }

    /// Asks the driver for this timeout; returns what it set (drivers round).
    pub fn set_timeout(&self, seconds: i32) -> io::Result<i32> {
        let mut value = seconds;
        // SAFETY: WDIOC_SETTIMEOUT reads and writes one c_int through the pointer, which
        // points at `value`, alive for the call; the descriptor is ours.
        unsafe { wdioc_settimeout(self.file.as_raw_fd(), &mut value) }.map_err(io::Error::from)?;
        Ok(value)
    }

    /// `WDIOC_GETSUPPORT`: the driver's name and what it supports.
    pub fn support(&self) -> io::Result<Support> {
        let mut info = WatchdogInfo::default();
        // SAFETY: WDIOC_GETSUPPORT writes one struct watchdog_info (this layout, repr(C))
        // through the pointer, which points at `info`, alive for the call.
        unsafe { wdioc_getsupport(self.file.as_raw_fd(), &mut info) }.map_err(io::Error::from)?;
        let end = info.identity.iter().position(|b| *b == 0).unwrap_or(32);
        Ok(Support {
            identity: String::from_utf8_lossy(&info.identity[..end]).into_owned(),
            firmware_version: info.firmware_version,
            options: info.options,
        })
    }

    /// `WDIOC_GETBOOTSTATUS`: `WDIOF_*` bits saying why the machine last booted, as far
    /// as the driver knows (CARDRESET: the watchdog reset it).
    pub fn boot_status(&self) -> io::Result<u32> {
        let mut value: nix::libc::c_int = 0;
        // SAFETY: WDIOC_GETBOOTSTATUS writes one c_int through the pointer, which points
        // at `value`, alive for the call.
        unsafe { wdioc_getbootstatus(self.file.as_raw_fd(), &mut value) }
            .map_err(io::Error::from)?;
        Ok(value as u32)
    }

    /// `WDIOC_GETTIMEOUT`: the timeout in force, in seconds.
    pub fn timeout(&self) -> io::Result<i32> {
        let mut value: nix::libc::c_int = 0;
        // SAFETY: WDIOC_GETTIMEOUT writes one c_int through the pointer, which points at
        // `value`, alive for the call.
        unsafe { wdioc_gettimeout(self.file.as_raw_fd(), &mut value) }.map_err(io::Error::from)?;
        Ok(value)
    }

    pub fn feed(&mut self) -> io::Result<()> {
        self.file.write_all(b"\0")
    }

    /// Disarms and closes: a deliberate stop must not reboot the device.
    pub fn disarm(mut self) -> io::Result<()> {
        self.file.write_all(b"V")
    }
}
