//! What schedules and sources kept as code share (`commands::schedules`,
//! `commands::sources`): reading a file of `[[…]]` tables, the keys a file changes with their
//! values before and after, and the steps of `apply` between printing the plan and writing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One of the file's keys whose value changes, both values as the file writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    pub key: String,
    pub old: String,
    pub new: String,
}

/// How applying went, for the exit code.
pub enum Applied {
    Changed,
    NothingToDo,
    DryRun,
}

/// Reads and parses the file at `path`; a mistake in it is reported with the file's name.
pub fn read_file<T: DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("Cannot read {shown}"))?;
    toml::from_str(&text).map_err(|error| anyhow::anyhow!("{shown}: {error}"))
}

/// An entry's keys as the file writes them, each with its value in TOML: `key`, and
/// `table.key` for the keys of a table in it (`locator.files_base`, `params.source`).
pub fn keys_of(entry: impl Serialize) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    if let Ok(toml::Value::Table(table)) = toml::Value::try_from(entry) {
        for (key, value) in table {
            match value {
                toml::Value::Table(inner) => {
                    for (name, value) in inner {
                        keys.insert(format!("{key}.{name}"), value.to_string());
                    }
                }
                value => {
                    keys.insert(key, value.to_string());
                }
            }
        }
    }
    keys
}

/// The keys whose values differ between `old` and `new`, each shown with its values as
/// `shown` has them (where a value is masked there, a change of the masked part alone is said
/// in words), `(unset)` where a side lacks the key. A difference no key shows still counts, as
/// one change of "(settings)".
pub fn changed_keys(
    (old, new): (&BTreeMap<String, String>, &BTreeMap<String, String>),
    (old_shown, new_shown): (&BTreeMap<String, String>, &BTreeMap<String, String>),
) -> Vec<KeyChange> {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let unset = || "(unset)".to_owned();
    let mut changed: Vec<KeyChange> = keys
        .into_iter()
        .filter(|key| old.get(*key) != new.get(*key))
        .map(|key| {
            let old = old_shown.get(key).cloned().unwrap_or_else(unset);
            let mut new = new_shown.get(key).cloned().unwrap_or_else(unset);
            if old == new {
                new.push_str(" (credentials changed)");
            }
            KeyChange { key: key.clone(), old, new }
        })
        .collect();
    if changed.is_empty() {
        changed.push(KeyChange {
            key: "(settings)".to_owned(),
            old: "as stored".to_owned(),
            new: "as the file says".to_owned(),
        });
    }
    changed
}

/// Prints what applying would change (`description`, which counts `changes`) and, when there
/// is nothing to change or it is a dry run, says so and returns how it ended; `None`: go on
/// and write.
pub fn print_plan(description: &str, changes: usize, dry_run: bool) -> Option<Applied> {
    print!("{description}");
    if changes == 0 {
        println!("Nothing to change.");
        Some(Applied::NothingToDo)
    } else if dry_run {
        println!("Dry run: nothing was changed.");
        Some(Applied::DryRun)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_tables_keys_are_named_under_it() {
        #[derive(Serialize)]
        struct Inner {
            kind: String,
        }
        #[derive(Serialize)]
        struct Entry {
            name: String,
            locator: Inner,
        }
        let entry = Entry { name: "a".to_owned(), locator: Inner { kind: "url".to_owned() } };
        assert_eq!(keys_of(entry), keys(&[("name", "\"a\""), ("locator.kind", "\"url\"")]));
    }

    #[test]
    fn only_the_keys_that_differ_are_changes_and_a_masked_one_says_so() {
        let old = keys(&[("a", "1"), ("b", "2"), ("url", "\"https://u:p@h/\"")]);
        let new = keys(&[("a", "1"), ("c", "3"), ("url", "\"https://u:q@h/\"")]);
        let shown = keys(&[("a", "1"), ("b", "2"), ("url", "\"https://u:•••@h/\"")]);
        let shown_new = keys(&[("a", "1"), ("c", "3"), ("url", "\"https://u:•••@h/\"")]);
        let changes = changed_keys((&old, &new), (&shown, &shown_new));
        let said: Vec<(&str, &str, &str)> =
            changes.iter().map(|c| (c.key.as_str(), c.old.as_str(), c.new.as_str())).collect();
        assert_eq!(
            said,
            [
                ("b", "2", "(unset)"),
                ("c", "(unset)", "3"),
                ("url", "\"https://u:•••@h/\"", "\"https://u:•••@h/\" (credentials changed)"),
            ]
        );
        let same = keys(&[("a", "1")]);
        assert_eq!(changed_keys((&same, &same), (&same, &same))[0].key, "(settings)");
    }
}
