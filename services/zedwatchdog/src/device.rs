//! The watchdog device: any write pings it; a `V` written before closing disarms it
//! (the kernel's "magic close", unless the driver was built with nowayout).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

nix::ioctl_readwrite!(wdioc_settimeout, b'W', 6, nix::libc::c_int);

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

    pub fn feed(&mut self) -> io::Result<()> {
        self.file.write_all(b"\0")
    }

    /// Disarms and closes: a deliberate stop must not reboot the device.
    pub fn disarm(mut self) -> io::Result<()> {
        self.file.write_all(b"V")
    }
}
