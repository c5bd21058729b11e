//! Where plugins are looked for, and what their files are called.
//!
//! `--plugin NAME` means the file `libzibrato_NAME.so` (each platform's own
//! prefix and suffix; a `-` in the name is a `_` in the file, as cargo names
//! libraries). It is looked for in `--plugin-dir`, then `$ZIBRATO_PLUGIN_DIR`,
//! then the directory of the worker's executable, so that a worker built next
//! to its plugins finds them with no flag.

use std::env::consts::{DLL_PREFIX, DLL_SUFFIX};
use std::path::{Path, PathBuf};

/// The prefix every plugin file's name starts with, after the platform's own.
const STEM: &str = "zibrato_";

/// The directories plugins are looked for in, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginDirs {
    dirs: Vec<PathBuf>,
}

/// A plugin that is not in any directory searched.
#[derive(Debug, thiserror::Error)]
#[error(
    "no plugin {name:?}: {file} is not in {searched}; plugins found: {found}",
    searched = list_paths(.searched),
    found = if .available.is_empty() { "none".to_string() } else { .available.join(", ") }
)]
pub struct NotFound {
    /// The name asked for.
    pub name: String,
    /// The file looked for.
    pub file: String,
    /// The directories searched, in order.
    pub searched: Vec<PathBuf>,
    /// The plugin names that are there.
    pub available: Vec<String>,
}

fn list_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "any directory (none given)".to_string();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl PluginDirs {
    /// The standard search order: `flag`, then `env` (`$ZIBRATO_PLUGIN_DIR`),
    /// then the directory of the running executable.
    pub fn standard(flag: Option<&Path>, env: Option<&Path>) -> PluginDirs {
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf));
        let mut dirs = Vec::new();
        for dir in [
            flag.map(Path::to_path_buf),
            env.map(Path::to_path_buf),
            exe_dir,
        ]
        .into_iter()
        .flatten()
        {
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        PluginDirs { dirs }
    }

    /// Exactly these directories.
    pub fn new(dirs: Vec<PathBuf>) -> PluginDirs {
        PluginDirs { dirs }
    }

    /// The directories, in search order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The file of plugin `name` in the first directory that has it.
    pub fn find(&self, name: &str) -> Result<PathBuf, NotFound> {
        let file = file_name(name);
        if is_valid_name(name) {
            for dir in &self.dirs {
                let path = dir.join(&file);
                if path.is_file() {
                    return Ok(path);
                }
            }
        }
        Err(NotFound {
            name: name.to_string(),
            file,
            searched: self.dirs.clone(),
            available: self.available().into_iter().map(|(name, _)| name).collect(),
        })
    }

    /// Every plugin file found, by name, first directory winning, sorted by name.
    pub fn available(&self) -> Vec<(String, PathBuf)> {
        let mut found: Vec<(String, PathBuf)> = Vec::new();
        for dir in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut here: Vec<(String, PathBuf)> = entries
                .flatten()
                .filter_map(|entry| {
                    let file = entry.file_name();
                    let name = plugin_name(file.to_str()?)?;
                    entry
                        .path()
                        .is_file()
                        .then(|| (name.to_string(), entry.path()))
                })
                .collect();
            here.sort();
            for (name, path) in here {
                if !found.iter().any(|(n, _)| *n == name) {
                    found.push((name, path));
                }
            }
        }
        found.sort();
        found
    }
}

/// Whether `name` can name a plugin: letters, digits, `_` and `-`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The file name of plugin `name` on this platform (`libzibrato_NAME.so`).
pub fn file_name(name: &str) -> String {
    format!("{DLL_PREFIX}{STEM}{}{DLL_SUFFIX}", name.replace('-', "_"))
}

/// The plugin name a file name stands for, if it is a plugin's.
pub fn plugin_name(file: &str) -> Option<&str> {
    let name = file
        .strip_prefix(DLL_PREFIX)?
        .strip_prefix(STEM)?
        .strip_suffix(DLL_SUFFIX)?;
    is_valid_name(name).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_files_are_named_like_cargo_names_libraries() {
        assert_eq!(
            file_name("stdout"),
            format!("{DLL_PREFIX}zibrato_stdout{DLL_SUFFIX}")
        );
        assert_eq!(
            file_name("my-backend"),
            format!("{DLL_PREFIX}zibrato_my_backend{DLL_SUFFIX}")
        );
        assert_eq!(
            plugin_name(&format!("{DLL_PREFIX}zibrato_statsd{DLL_SUFFIX}")),
            Some("statsd")
        );
        assert_eq!(plugin_name("libzmq.so"), None);
    }

    #[test]
    fn directories_are_searched_in_order() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        std::fs::write(second.path().join(file_name("a")), b"").unwrap();
        std::fs::write(first.path().join(file_name("b")), b"").unwrap();
        std::fs::write(second.path().join(file_name("b")), b"").unwrap();
        let dirs = PluginDirs::new(vec![first.path().into(), second.path().into()]);
        assert_eq!(dirs.find("a").unwrap(), second.path().join(file_name("a")));
        assert_eq!(dirs.find("b").unwrap(), first.path().join(file_name("b")));
        let names: Vec<_> = dirs.available().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["a", "b"]);
    }

    #[test]
    fn a_missing_plugin_names_the_directories_and_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(file_name("stdout")), b"").unwrap();
        let dirs = PluginDirs::new(vec![dir.path().into()]);
        let message = dirs.find("librato").unwrap_err().to_string();
        assert!(message.contains(&file_name("librato")), "{message}");
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        assert!(message.ends_with("plugins found: stdout"), "{message}");
        assert!(dirs.find("../stdout").is_err());
    }
}
