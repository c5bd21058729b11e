//! Loading a backend plugin: open the shared library, check that it is a
//! Zibrato backend built against a compatible API, and read what it says of
//! itself. Nothing of the plugin runs before these checks pass.

use abi_stable::library::{lib_header_from_path, LibraryError};
use std::fmt;
use std::path::{Path, PathBuf};
use zibrato_backend_api::abi::{BackendModuleRef, API_VERSION};

/// A loaded, checked backend plugin.
#[derive(Clone)]
pub struct Plugin {
    name: String,
    version: String,
    description: String,
    path: Option<PathBuf>,
    module: BackendModuleRef,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("path", &self.path)
            .finish()
    }
}

/// Why a file could not be loaded as a plugin. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be opened as a shared library.
    #[error("{path}: cannot be loaded as a shared library: {reason}", path = .path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What the dynamic loader said.
        reason: String,
    },
    /// The library exports no Zibrato backend module.
    #[error("{path}: not a Zibrato backend (it exports no backend module)", path = .path.display())]
    NotABackend {
        /// The file.
        path: PathBuf,
    },
    /// The library was built against an incompatible version of the API.
    #[error(
        "{path}: built against zibrato-backend-api {found}, incompatible with this worker's {API_VERSION}; rebuild the plugin",
        path = .path.display()
    )]
    IncompatibleVersion {
        /// The file.
        path: PathBuf,
        /// The API version the plugin was built against.
        found: String,
    },
    /// The library's interface differs in layout from the host's.
    #[error(
        "{path}: not a compatible Zibrato backend (its interface differs from this worker's zibrato-backend-api {API_VERSION}): {detail}",
        path = .path.display()
    )]
    Incompatible {
        /// The file.
        path: PathBuf,
        /// What differs, in one line.
        detail: String,
    },
}

/// The first line of a possibly long text, cut to a readable length.
fn one_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut out: String = line.chars().take(200).collect();
    if out.len() < line.len() {
        out.push('…');
    }
    out
}

fn load_error(path: &Path, error: LibraryError) -> LoadError {
    let path = path.to_path_buf();
    match error {
        LibraryError::OpenError { err, .. } => LoadError::Open {
            path,
            reason: one_line(&err.to_string()),
        },
        LibraryError::GetSymbolError { .. } => LoadError::NotABackend { path },
        LibraryError::IncompatibleVersionNumber { actual_version, .. } => {
            LoadError::IncompatibleVersion {
                path,
                found: actual_version.to_string(),
            }
        }
        LibraryError::ParseVersionError(e) => LoadError::Incompatible {
            path,
            detail: one_line(&e.to_string()),
        },
        LibraryError::Many(errors) if !errors.is_empty() => {
            let first = errors.into_iter().next();
            match first {
                Some(first) => load_error(&path, first),
                None => LoadError::NotABackend { path },
            }
        }
        other => LoadError::Incompatible {
            path,
            detail: one_line(&other.to_string()),
        },
    }
}

impl Plugin {
    /// Loads and checks the plugin in the file at `path`.
    pub fn load(path: &Path) -> Result<Plugin, LoadError> {
        let header = lib_header_from_path(path).map_err(|e| load_error(path, e))?;
        let module = header
            .init_root_module::<BackendModuleRef>()
            .map_err(|e| load_error(path, e))?;
        Ok(Plugin::describe(module, Some(path.to_path_buf())))
    }

    /// A plugin linked into this program rather than loaded from a file
    /// (what `zibrato_backend_module()` of a backend crate returns).
    pub fn linked(module: BackendModuleRef) -> Plugin {
        Plugin::describe(module, None)
    }

    fn describe(module: BackendModuleRef, path: Option<PathBuf>) -> Plugin {
        Plugin {
            name: module.name().to_string(),
            version: module.version().to_string(),
            description: module.description().to_string(),
            path,
            module,
        }
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin's own version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// What the backend does, in one line.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The file it was loaded from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Its root module.
    pub fn module(&self) -> BackendModuleRef {
        self.module
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi_stable::sabi_types::VersionNumber;

    #[test]
    fn an_incompatible_api_version_names_the_file_and_both_versions() {
        let error = LibraryError::IncompatibleVersionNumber {
            library_name: "zibrato backend",
            expected_version: VersionNumber {
                major: 0,
                minor: 3,
                patch: 0,
            },
            actual_version: VersionNumber {
                major: 0,
                minor: 2,
                patch: 7,
            },
        };
        let message = load_error(Path::new("/plugins/libzibrato_old.so"), error).to_string();
        assert!(
            message.starts_with("/plugins/libzibrato_old.so: "),
            "{message}"
        );
        assert!(message.contains("0.2.7"), "{message}");
        assert!(message.contains(API_VERSION), "{message}");
        assert!(!message.contains('\n'));
    }

    #[test]
    fn a_missing_file_is_an_open_error_naming_it() {
        let message = Plugin::load(Path::new("/nonexistent/libzibrato_x.so"))
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("/nonexistent/libzibrato_x.so: cannot be loaded"),
            "{message}"
        );
    }
}
