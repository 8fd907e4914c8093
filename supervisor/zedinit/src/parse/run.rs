//! Parsing `[run]` (linuxkit's names and casing), part of the definition parser.

use super::{Cx, a_type};
use crate::caps;
use crate::spec::{Bind, IdRef, Mkdir, Rlimit, RunSpec};
use std::ops::Range;
use std::path::PathBuf;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

const RLIMITS: [(&str, i32); 16] = [
    ("as", libc::RLIMIT_AS as i32),
    ("core", libc::RLIMIT_CORE as i32),
    ("cpu", libc::RLIMIT_CPU as i32),
    ("data", libc::RLIMIT_DATA as i32),
    ("fsize", libc::RLIMIT_FSIZE as i32),
    ("locks", libc::RLIMIT_LOCKS as i32),
    ("memlock", libc::RLIMIT_MEMLOCK as i32),
    ("msgqueue", libc::RLIMIT_MSGQUEUE as i32),
    ("nice", libc::RLIMIT_NICE as i32),
    ("nofile", libc::RLIMIT_NOFILE as i32),
    ("nproc", libc::RLIMIT_NPROC as i32),
    ("rss", libc::RLIMIT_RSS as i32),
    ("rtprio", libc::RLIMIT_RTPRIO as i32),
    ("rttime", libc::RLIMIT_RTTIME as i32),
    ("sigpending", libc::RLIMIT_SIGPENDING as i32),
    ("stack", libc::RLIMIT_STACK as i32),
];

impl Cx<'_> {
    pub(super) fn run(
        &mut self,
        table_span: &Range<usize>,
        table: &DeTable<'_>,
    ) -> Option<RunSpec> {
        let before = self.error_count();
        let mut run = RunSpec::default();
        for (key, value) in table.iter() {
            let k = key.get_ref().as_ref();
            let dotted = format!("run.{k}");
            let d = dotted.as_str();
            match k {
                "uid" => run.uid = self.id_ref(d, value),
                "gid" => run.gid = self.id_ref(d, value),
                "additionalGids" => {
                    for item in self.array(d, value) {
                        if let Some(id) = self.id_ref(d, item) {
                            run.additional_gids.push(id);
                        }
                    }
                }
                "capabilities" => run.capabilities = self.caps(d, value),
                "ambient" => run.ambient = self.caps(d, value),
                "binds" => {
                    for item in self.array(d, value) {
                        if let Some(text) = self.string(d, item) {
                            match parse_bind(&text) {
                                Ok(bind) => run.binds.push(bind),
                                Err(e) => self.error(&item.span(), d, e),
                            }
                        }
                    }
                }
                "mkdir" => {
                    for item in self.array(d, value) {
                        if let Some(m) = self.mkdir(d, item) {
                            run.mkdir.push(m);
                        }
                    }
                }
                "devices" => {
                    for item in self.array(d, value) {
                        match item.get_ref().as_str() {
                            Some(p) if p.starts_with("/dev/") && !p.contains("..") => run.devices.push(p.into()),
                            _ => self.error(&item.span(), d, "each device is a path under /dev, e.g. \"/dev/watchdog\""),
                        }
                    }
                }
                "net" => match self.string(d, value).as_deref() {
                    Some("host") => run.net_none = false,
                    Some("none") => run.net_none = true,
                    Some(other) => self.error(&value.span(), d, format!("must be \"host\" or \"none\", not {other:?}")),
                    None => {}
                },
                "pid" => match self.string(d, value).as_deref() {
                    Some("host") => run.pid_new = false,
                    Some("new") => run.pid_new = true,
                    Some(other) => self.error(&value.span(), d, format!("must be \"host\" (zedinit's pid namespace) or \"new\" (its own), not {other:?}")),
                    None => {}
                },
                "readonly" => run.readonly = self.boolean(d, value).unwrap_or(false),
                "noNewPrivileges" => run.no_new_privileges = self.boolean(d, value).unwrap_or(false),
                "rlimits" => {
                    for item in self.array(d, value) {
                        if let Some(text) = self.string(d, item) {
                            match parse_rlimit(&text) {
                                Ok(r) => run.rlimits.push(r),
                                Err(e) => self.error(&item.span(), d, e),
                            }
                        }
                    }
                }
                "oomScoreAdj" => match value.get_ref().as_integer().and_then(|i| i.as_str().parse::<i32>().ok()) {
                    Some(n) if (-1000..=1000).contains(&n) => run.oom_score_adj = Some(n),
                    _ => self.error(&value.span(), d, "must be a whole number from -1000 to 1000"),
                },
                "env" => {
                    for item in self.array(d, value) {
                        match item.get_ref().as_str().and_then(|s| s.split_once('=')) {
                            Some((name, val)) if !name.is_empty() && !name.contains('\0') && !val.contains('\0') => {
                                run.env.push((name.to_string(), val.to_string()))
                            }
                            _ => self.error(&item.span(), d, "each entry is \"NAME=value\""),
                        }
                    }
                }
                "cwd" => match self.string(d, value) {
                    Some(p) if p.starts_with('/') => run.cwd = Some(p.into()),
                    Some(p) => self.error(&value.span(), d, format!("must be an absolute path, not {p:?}")),
                    None => {}
                },
                _ => self.error(&key.span(), d, "unknown key (the [run] keys are linuxkit's: uid, gid, additionalGids, capabilities, ambient, binds, mkdir, devices, net, pid, readonly, rlimits, oomScoreAdj, noNewPrivileges, env, cwd)"),
            }
        }
        // Ambient capabilities must be in the declared set (the kernel needs them
        // permitted and inheritable), and a non-root service only has effective
        // capabilities through ambient: anything else declared would be dead weight.
        let line = Some(self.line(table_span));
        for cap in &run.ambient {
            if !run.capabilities.contains(cap) {
                self.error_at_line(
                    line,
                    "run.ambient",
                    format!("{} is not in run.capabilities", caps::name(*cap)),
                );
            }
        }
        let root = matches!(run.uid, None | Some(IdRef::Id(0)));
        if !root {
            let lost: Vec<&str> = run
                .capabilities
                .iter()
                .filter(|c| !run.ambient.contains(c))
                .map(|c| caps::name(*c))
                .collect();
            if !lost.is_empty() {
                self.error_at_line(line, "run.capabilities", format!(
                        "a non-root service gets effective capabilities only through run.ambient: add {} to ambient or remove them",
                        lost.join(", ")
                    ));
            }
        }
        (self.error_count() == before).then_some(run)
    }

    pub(super) fn array<'t, 'i>(
        &mut self,
        key: &str,
        value: &'t Spanned<DeValue<'i>>,
    ) -> Vec<&'t Spanned<DeValue<'i>>> {
        match value.get_ref().as_array() {
            Some(a) => a.iter().collect(),
            None => {
                self.error(
                    &value.span(),
                    key,
                    format!("must be an array, not {}", a_type(value.get_ref())),
                );
                Vec::new()
            }
        }
    }

    fn id_ref(&mut self, key: &str, value: &Spanned<DeValue<'_>>) -> Option<IdRef> {
        match value.get_ref() {
            DeValue::Integer(i) => match i.as_str().parse::<u32>() {
                Ok(n) if i.radix() == 10 && n != u32::MAX => Some(IdRef::Id(n)),
                _ => {
                    self.error(&value.span(), key, "must be a user/group number or name");
                    None
                }
            },
            DeValue::String(s) => match parse_id_text(s) {
                Ok(id) => Some(id),
                Err(e) => {
                    self.error(&value.span(), key, e);
                    None
                }
            },
            other => {
                self.error(
                    &value.span(),
                    key,
                    format!("must be a number or a name, not {}", a_type(other)),
                );
                None
            }
        }
    }

    pub(super) fn caps(&mut self, key: &str, value: &Spanned<DeValue<'_>>) -> Vec<u8> {
        let mut out = Vec::new();
        for item in self.array(key, value) {
            match item.get_ref().as_str() {
                Some(name) if name.eq_ignore_ascii_case("all") => {
                    self.error(
                        &item.span(),
                        key,
                        "\"all\" is what zedctr exists to remove: name each capability",
                    );
                }
                Some(name) => match caps::parse(name) {
                    Ok(c) if !out.contains(&c) => out.push(c),
                    Ok(_) => {}
                    Err(e) => self.error(&item.span(), key, e),
                },
                None => self.error(
                    &item.span(),
                    key,
                    "each capability is a name such as \"CAP_NET_ADMIN\"",
                ),
            }
        }
        out.sort_unstable();
        out
    }

    fn mkdir(&mut self, key: &str, item: &Spanned<DeValue<'_>>) -> Option<Mkdir> {
        let bad = |cx: &mut Self| {
            cx.error(&item.span(), key, "each entry is a path or { path = \"/dir\", owner = \"uid[:gid]\", mode = \"0750\" }");
            None
        };
        match item.get_ref() {
            DeValue::String(p) if p.starts_with('/') => match mkdir_path(p) {
                Ok(path) => Some(Mkdir {
                    path,
                    owner: None,
                    mode: 0o755,
                }),
                Err(e) => {
                    self.error(&item.span(), key, e);
                    None
                }
            },
            DeValue::Table(t) => {
                let mut m = Mkdir {
                    path: Default::default(),
                    owner: None,
                    mode: 0o755,
                };
                for (k, v) in t.iter() {
                    match (k.get_ref().as_ref(), v.get_ref()) {
                        ("path", DeValue::String(p)) if p.starts_with('/') => match mkdir_path(p) {
                            Ok(path) => m.path = path,
                            Err(e) => {
                                self.error(&v.span(), key, e);
                                return None;
                            }
                        },
                        ("owner", DeValue::String(o)) => {
                            let (u, g) = match o.split_once(':') {
                                Some((u, g)) => (u, Some(g)),
                                None => (o.as_ref(), None),
                            };
                            match (parse_id_text(u), g.map(parse_id_text).transpose()) {
                                (Ok(u), Ok(g)) => m.owner = Some((u, g)),
                                (Err(e), _) | (_, Err(e)) => self.error(&v.span(), key, e),
                            }
                        }
                        ("mode", DeValue::String(s)) => match u32::from_str_radix(s, 8) {
                            Ok(mode) if mode <= 0o7777 => m.mode = mode,
                            _ => self.error(
                                &v.span(),
                                key,
                                format!("mode must be octal such as \"0750\", not {s:?}"),
                            ),
                        },
                        _ => return bad(self),
                    }
                }
                if m.path.as_os_str().is_empty() {
                    return bad(self);
                }
                Some(m)
            }
            _ => bad(self),
        }
    }
}

/// A mkdir path must name one directory plainly: each component a name, never `..`
/// (which would climb out of the service's root, audit finding 15), `.` or empty (`//`,
/// a trailing `/`), so the directory made is the one the definition shows.
fn mkdir_path(text: &str) -> Result<PathBuf, String> {
    let plain = text.strip_prefix('/').is_some_and(|rest| {
        rest.split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
    });
    if plain {
        Ok(PathBuf::from(text))
    } else {
        Err(format!(
            "{text:?}: each part of a mkdir path must be a name (no \"..\", \".\", \"//\" or trailing \"/\")"
        ))
    }
}

fn parse_id_text(text: &str) -> Result<IdRef, String> {
    if let Ok(n) = text.parse::<u32>() {
        return Ok(IdRef::Id(n));
    }
    let ok = !text.is_empty()
        && text.len() <= 32
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(IdRef::Name(text.to_string()))
    } else {
        Err(format!("{text:?} is not a user/group number or name"))
    }
}

/// `"src:dst"` or `"src:dst:opts"`, opts from ro, rw (and linuxkit's bind/rbind/rshared,
/// accepted and meaningless here: every bind is a private, non-recursive bind).
pub fn parse_bind(text: &str) -> Result<Bind, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => return Err(format!("{text:?} is not \"src:dst[:ro|rw]\"")),
    };
    if !src.starts_with('/') || !dst.starts_with('/') || dst.split('/').any(|c| c == "..") {
        return Err(format!(
            "{text:?}: source and destination must be absolute paths, without \"..\""
        ));
    }
    if dst == "/" {
        return Err(format!("{text:?}: can't bind over the service's root"));
    }
    let mut readonly = false;
    for opt in opts.split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => readonly = true,
            "rw" => readonly = false,
            "bind" | "rbind" | "rshared" | "rprivate" | "private" => {}
            other => return Err(format!("{text:?}: unknown bind option {other:?} (ro, rw)")),
        }
    }
    Ok(Bind {
        src: src.into(),
        dst: dst.into(),
        readonly,
    })
}

/// `"nofile,1024,2048"` (or `RLIMIT_NOFILE`), values a number or `unlimited`.
pub fn parse_rlimit(text: &str) -> Result<Rlimit, String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [name, soft, hard] = parts.as_slice() else {
        return Err(format!(
            "{text:?} is not \"name,soft,hard\" (e.g. \"nofile,1024,2048\")"
        ));
    };
    let lower = name.to_ascii_lowercase();
    let short = lower.strip_prefix("rlimit_").unwrap_or(&lower);
    let (name, resource) = RLIMITS
        .iter()
        .find(|(n, _)| *n == short)
        .copied()
        .ok_or(format!("unknown rlimit {name:?}"))?;
    let value = |v: &str| -> Result<u64, String> {
        if v == "unlimited" || v == "infinity" {
            Ok(libc::RLIM_INFINITY)
        } else {
            v.parse::<u64>()
                .map_err(|_| format!("{text:?}: {v:?} is not a number or \"unlimited\""))
        }
    };
    let (soft, hard) = (value(soft)?, value(hard)?);
    if soft > hard {
        return Err(format!("{text:?}: soft limit above hard limit"));
    }
    Ok(Rlimit {
        resource,
        name,
        soft,
        hard,
    })
}
