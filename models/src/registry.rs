//! A model registry in a local directory: numbered versions per model, one current version,
//! atomic promotion and rollback.
//!
//! Layout: `ROOT/NAME/vNNNNNNNN.eddymodel` per version and `ROOT/NAME/state.json` holding the
//! current version and the promotion history. `state.json` is replaced by rename, so a reader
//! sees the old state or the new one, never a mix.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::artifact::Artifact;
use crate::error::{ModelError, Result};

const EXTENSION: &str = "eddymodel";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct State {
    current: Option<u64>,
    /// Versions that were current before, oldest first; rollback pops the last.
    history: Vec<u64>,
}

/// One model's versions as `eddy model list` shows them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelVersions {
    pub name: String,
    pub versions: Vec<u64>,
    pub current: Option<u64>,
}

/// A registry rooted at a directory.
#[derive(Clone, Debug)]
pub struct Registry {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn valid_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || name.starts_with('.')
    {
        return Err(ModelError::Registry(format!(
            "model name {name:?}: use letters, digits, '-', '_' and '.', not starting with '.'"
        )));
    }
    Ok(())
}

impl Registry {
    pub fn open(root: &Path) -> Result<Registry> {
        std::fs::create_dir_all(root).map_err(io(root))?;
        Ok(Registry {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Path of one version's artifact.
    pub fn path(&self, name: &str, version: u64) -> PathBuf {
        self.dir(name).join(format!("v{version:08}.{EXTENSION}"))
    }

    fn state(&self, name: &str) -> Result<State> {
        let path = self.dir(name).join("state.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ModelError::Registry(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn write_state(&self, name: &str, state: &State) -> Result<()> {
        let dir = self.dir(name);
        let path = dir.join("state.json");
        let tmp = dir.join(".state.json.tmp");
        let bytes =
            serde_json::to_vec_pretty(state).map_err(|e| ModelError::Registry(e.to_string()))?;
        let mut file = File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(&bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&dir))
    }

    /// Model names in the registry, sorted.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(&self.root)
            .map_err(io(&self.root))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Versions of `name`, ascending.
    pub fn versions(&self, name: &str) -> Result<Vec<u64>> {
        let dir = self.dir(name);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir)(e)),
        };
        let mut versions: Vec<u64> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                name.strip_prefix('v')?
                    .strip_suffix(&format!(".{EXTENSION}"))?
                    .parse()
                    .ok()
            })
            .collect();
        versions.sort_unstable();
        Ok(versions)
    }

    pub fn current(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.state(name)?.current)
    }

    pub fn list(&self) -> Result<Vec<ModelVersions>> {
        self.names()?
            .into_iter()
            .map(|name| {
                Ok(ModelVersions {
                    versions: self.versions(&name)?,
                    current: self.current(&name)?,
                    name,
                })
            })
            .collect()
    }

    /// Stores `artifact` as the next version of its model; the first version becomes current.
    pub fn register(&self, artifact: &mut Artifact) -> Result<u64> {
        let name = artifact.meta.name.clone();
        valid_name(&name)?;
        let dir = self.dir(&name);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let version = self.versions(&name)?.last().map_or(1, |v| v + 1);
        artifact.meta.version = version;
        artifact.write_atomic(&self.path(&name, version))?;
        if self.current(&name)?.is_none() {
            self.promote(&name, version)?;
        }
        Ok(version)
    }

    pub fn load(&self, name: &str, version: u64) -> Result<Artifact> {
        let path = self.path(name, version);
        if !path.exists() {
            return Err(ModelError::Registry(format!(
                "model {name:?} has no version {version}"
            )));
        }
        Artifact::read(&path)
    }

    /// The current version's artifact, if the model has one.
    pub fn load_current(&self, name: &str) -> Result<Option<Artifact>> {
        self.current(name)?.map(|v| self.load(name, v)).transpose()
    }

    /// Makes `version` current after checking that it loads.
    pub fn promote(&self, name: &str, version: u64) -> Result<()> {
        self.load(name, version)?;
        let mut state = self.state(name)?;
        if state.current == Some(version) {
            return Ok(());
        }
        if let Some(previous) = state.current {
            state.history.push(previous);
        }
        state.current = Some(version);
        self.write_state(name, &state)
    }

    /// Makes the previously current version current again; returns it.
    pub fn rollback(&self, name: &str) -> Result<u64> {
        let mut state = self.state(name)?;
        let Some(previous) = state.history.pop() else {
            return Err(ModelError::Registry(format!(
                "model {name:?} has no earlier current version to roll back to"
            )));
        };
        self.load(name, previous)?;
        state.current = Some(previous);
        self.write_state(name, &state)?;
        Ok(previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact() -> Artifact {
        crate::artifact::tests::sample()
    }

    #[test]
    fn versions_promotion_and_rollback() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::open(dir.path()).expect("open");
        let v1 = registry.register(&mut artifact()).expect("v1");
        let v2 = registry.register(&mut artifact()).expect("v2");
        let v3 = registry.register(&mut artifact()).expect("v3");
        assert_eq!((v1, v2, v3), (1, 2, 3));
        assert_eq!(
            registry.current("clicks").expect("current"),
            Some(1),
            "the first version becomes current"
        );
        registry.promote("clicks", 3).expect("promote 3");
        registry.promote("clicks", 2).expect("promote 2");
        assert_eq!(registry.rollback("clicks").expect("rollback"), 3);
        assert_eq!(registry.rollback("clicks").expect("rollback"), 1);
        assert!(
            registry.rollback("clicks").is_err(),
            "nothing left to roll back to"
        );
        assert_eq!(
            registry
                .load_current("clicks")
                .expect("load")
                .map(|a| a.meta.version),
            Some(1)
        );
        let list = registry.list().expect("list");
        assert_eq!(list[0].versions, vec![1, 2, 3]);
    }

    #[test]
    fn a_corrupt_version_cannot_be_promoted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::open(dir.path()).expect("open");
        registry.register(&mut artifact()).expect("v1");
        registry.register(&mut artifact()).expect("v2");
        let path = registry.path("clicks", 2);
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
        let err = registry
            .promote("clicks", 2)
            .expect_err("corrupt")
            .to_string();
        assert!(
            err.contains("corrupt") || err.contains("truncated"),
            "{err}"
        );
        assert_eq!(registry.current("clicks").expect("current"), Some(1));
    }

    #[test]
    fn names_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::open(dir.path()).expect("open");
        let mut a = artifact();
        a.meta.name = "../escape".into();
        assert!(registry.register(&mut a).is_err());
    }
}
