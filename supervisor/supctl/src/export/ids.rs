//! The image's users and groups, for numeric ids in the export: linuxkit reads a name
//! in `uid:`/`gid:` as a user of its own making (it allocates ids for the names it sees
//! and writes them into the container's /etc/passwd), not the image's user of that
//! name, so `nobody` would become some other id. Names are looked up where zedinit looks
//! them up, the image's /etc/passwd and /etc/group.

use super::build_yml::Container;
use std::collections::BTreeMap;
use std::path::Path;
use zedinit::spec::IdRef;

/// `name → id` from /etc/passwd or /etc/group text (`name:password:id:...`); lines that
/// are not such entries are skipped, the first entry of a name wins (as getpwnam's).
pub fn id_table(text: &str) -> BTreeMap<String, u32> {
    let mut table = BTreeMap::new();
    for line in text.lines() {
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if let Ok(id) = id.parse() {
            table.entry(name.to_string()).or_insert(id);
        }
    }
    table
}

impl Container {
    /// The users and groups of the image whose root is `root` (`/` when the export runs
    /// inside the image).
    pub fn read_ids(&mut self, root: &Path) -> Result<(), String> {
        let read = |file: &str| {
            let path = root.join(file);
            std::fs::read_to_string(&path)
                .map(|text| id_table(&text))
                .map_err(|e| format!("{}: {e}", path.display()))
        };
        self.users = read("etc/passwd")?;
        self.groups = read("etc/group")?;
        Ok(())
    }

    /// A user as a number: a name is looked up in the image's /etc/passwd.
    pub(super) fn uid(&self, id: &IdRef) -> Result<u32, String> {
        numeric(id, &self.users, "user", "/etc/passwd")
    }

    /// A group as a number: a name is looked up in the image's /etc/group.
    pub(super) fn gid(&self, id: &IdRef) -> Result<u32, String> {
        numeric(id, &self.groups, "group", "/etc/group")
    }
}

fn numeric(
    id: &IdRef,
    table: &BTreeMap<String, u32>,
    what: &str,
    file: &str,
) -> Result<u32, String> {
    match id {
        IdRef::Id(n) => Ok(*n),
        IdRef::Name(name) => table.get(name).copied().ok_or_else(|| {
            format!(
                "{what} {name:?} is not in the image's {file} (linuxkit would read the name \
                 as a {what} of its own making; give --root the image's root)"
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_group_lines_give_names_and_ids() {
        let users = id_table(
            "root:x:0:0:root:/root:/bin/bash\n# a comment\n\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nbad:x:notanumber:0\nnobody:x:1:1::/:/bin/sh\n",
        );
        assert_eq!(users.get("root"), Some(&0));
        assert_eq!(users.get("nobody"), Some(&65534), "the first entry wins");
        assert_eq!(users.get("bad"), None);
        assert_eq!(users.len(), 2);
    }

    #[test]
    fn names_become_numbers_and_an_unknown_name_is_an_error() {
        let mut c = Container::default();
        c.users.insert("nobody".into(), 65534);
        c.groups.insert("nogroup".into(), 65534);
        assert_eq!(c.uid(&IdRef::Name("nobody".into())), Ok(65534));
        assert_eq!(c.gid(&IdRef::Name("nogroup".into())), Ok(65534));
        assert_eq!(c.uid(&IdRef::Id(7)), Ok(7));
        let e = c
            .gid(&IdRef::Name("nobody".into()))
            .expect_err("not a group");
        assert!(
            e.contains("group \"nobody\" is not in the image's /etc/group"),
            "{e}"
        );
    }
}
