//! The Cedar policy store: a directory of `*.cedar` files, validated against Portcullis's
//! schema before it goes live.
//!
//! A policy version is a counter and the content hash of the schema and files. Loading a
//! directory whose content differs from the live version validates it first: if it is valid it
//! becomes version `counter + 1` (stored, so a restart keeps it); if not, the error names each
//! file, line and reason, and the previous version stays live.

use crate::bindings::Declarations;
use crate::store::{self, PolicyRow, Store, StoreError};
use portcullis_shared::policy::{self, PolicyDiagnostic, PolicyError};
use portcullis_shared::schema;
use portcullis_shared::snapshot::{AttributeDecl, PolicyFile, PolicyVersion};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Why a policy directory was not made live.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("cannot read policy directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("policy file {0} is not UTF-8")]
    NotUtf8(PathBuf),
    #[error("{0}")]
    Invalid(PolicyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReloadError {
    /// Per-file diagnostics when the policies themselves are invalid.
    pub fn diagnostics(&self) -> Vec<PolicyDiagnostic> {
        match self {
            Self::Invalid(PolicyError::Invalid(d)) => d.clone(),
            other => vec![PolicyDiagnostic {
                file: String::new(),
                line: 0,
                column: 0,
                message: other.to_string(),
            }],
        }
    }
}

/// The live policy version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivePolicy {
    pub version: PolicyVersion,
    pub schema: String,
    /// The principal attributes `schema` declares beyond the built-in ones.
    pub attributes: Vec<AttributeDecl>,
    /// The resource labels `schema` declares.
    pub labels: Vec<AttributeDecl>,
    pub files: Vec<PolicyFile>,
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The directory matches the live version.
    Unchanged(PolicyVersion),
    /// A new version went live.
    Updated(PolicyVersion),
}

/// Holds the live policy version and makes new ones live.
///
/// The schema a version is validated against declares the principal attributes of the
/// sources' custom extensions and the bindings' attribute mappings and resource labels (see
/// [`Declarations`]); when the bindings change them, [`Self::rebase`] revalidates the live
/// files against the new schema as a new version.
#[derive(Debug, Clone)]
pub struct PolicyStore {
    dir: PathBuf,
    store: Store,
    /// Principal attributes from configured extensions.
    extension: Vec<AttributeDecl>,
    /// What the next version's schema declares.
    declared: Arc<RwLock<Declarations>>,
    live: Arc<RwLock<Option<LivePolicy>>>,
    /// Serialises reloads so two cannot allocate the same counter.
    reload_lock: Arc<tokio::sync::Mutex<()>>,
}

impl PolicyStore {
    /// Restores the last stored version (if any) as live. Set the bindings' declarations with
    /// [`Self::declare`], then call [`Self::reload`].
    pub async fn open(
        dir: PathBuf,
        store: Store,
        extension: Vec<AttributeDecl>,
    ) -> Result<Self, StoreError> {
        let latest = store.run(|c| store::latest_policy(c)).await?;
        let live = latest.map(|row| LivePolicy {
            version: row.version,
            schema: row.schema,
            attributes: row.attributes,
            labels: row.labels,
            files: row.files,
        });
        Ok(Self {
            dir,
            store,
            declared: Arc::new(RwLock::new(Declarations {
                principal: extension.clone(),
                labels: Vec::new(),
            })),
            extension,
            live: Arc::new(RwLock::new(live)),
            reload_lock: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The principal attributes the sources' custom extensions declare.
    pub fn extension(&self) -> &[AttributeDecl] {
        &self.extension
    }

    /// The live version, if any version was ever valid.
    pub fn live(&self) -> Option<LivePolicy> {
        self.live.read().ok().and_then(|g| g.clone())
    }

    /// What the schema of the next version will declare.
    pub fn declare(&self, declarations: Declarations) {
        if let Ok(mut d) = self.declared.write() {
            *d = declarations;
        }
    }

    fn declared(&self) -> Declarations {
        self.declared.read().map(|d| d.clone()).unwrap_or_default()
    }

    /// Whether the live files validate against the schema `declarations` imply.
    pub fn check(&self, declarations: &Declarations) -> Result<(), ReloadError> {
        let Some(live) = self.live() else {
            return Ok(());
        };
        let schema = schema::build(&declarations.principal, &declarations.labels);
        policy::compile(&schema, &live.files).map_err(ReloadError::Invalid)?;
        Ok(())
    }

    /// Reads the directory, validates it, and makes it live if it differs from the live
    /// version. On error the live version is untouched.
    pub async fn reload(&self) -> Result<ReloadOutcome, ReloadError> {
        let _serial = self.reload_lock.lock().await;
        let dir = self.dir.clone();
        let files = tokio::task::spawn_blocking(move || read_dir(&dir))
            .await
            .map_err(|e| ReloadError::Store(StoreError::Worker(e.to_string())))??;
        self.make_live(files).await
    }

    /// Revalidates the live files against the current declarations and makes them a new
    /// version if the schema changed.
    pub async fn rebase(&self) -> Result<ReloadOutcome, ReloadError> {
        let _serial = self.reload_lock.lock().await;
        match self.live() {
            Some(live) => self.make_live(live.files).await,
            None => Ok(ReloadOutcome::Unchanged(PolicyVersion::default())),
        }
    }

    async fn make_live(&self, files: Vec<PolicyFile>) -> Result<ReloadOutcome, ReloadError> {
        let declared = self.declared();
        let schema = schema::build(&declared.principal, &declared.labels);
        let hash = policy::content_hash(&schema, &files);
        let current = self.live();
        if let Some(live) = &current
            && live.version.hash == hash
        {
            return Ok(ReloadOutcome::Unchanged(live.version));
        }
        policy::compile(&schema, &files).map_err(ReloadError::Invalid)?;

        let counter = current.as_ref().map_or(0, |l| l.version.counter) + 1;
        let version = PolicyVersion { counter, hash };
        let row = PolicyRow {
            version,
            schema: schema.clone(),
            attributes: declared.principal.clone(),
            labels: declared.labels.clone(),
            files: files.clone(),
            created_ms: store::now_ms(),
        };
        self.store
            .run(move |c| store::insert_policy(c, &row))
            .await?;
        if let Ok(mut g) = self.live.write() {
            *g = Some(LivePolicy {
                version,
                schema,
                attributes: declared.principal,
                labels: declared.labels,
                files,
            });
        }
        metrics::gauge!("portcullis_policy_version").set(counter as f64);
        tracing::info!(policy_version = %version, "policy version is live");
        Ok(ReloadOutcome::Updated(version))
    }
}

/// Every `*.cedar` file directly in `dir`, sorted by name.
pub fn read_dir(dir: &Path) -> Result<Vec<PolicyFile>, ReloadError> {
    let io = |source| ReloadError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("cedar") || !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(io)?;
        let text = String::from_utf8(bytes).map_err(|_| ReloadError::NotUtf8(path.clone()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        files.push(PolicyFile { name, text });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str =
        "permit(principal in Group::\"Sales\", action == Action::\"chat\", resource);\n";
    const BAD: &str = "permit(principal, action == Action::\"chat\", resource)\n  when { principal.shoeSize > 3 };\n";

    #[tokio::test]
    async fn invalid_policies_leave_the_previous_version_live() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pdir = dir.path().join("policies");
        std::fs::create_dir(&pdir).expect("mkdir");
        std::fs::write(pdir.join("sales.cedar"), OK).expect("write");
        std::fs::write(pdir.join("README.md"), "ignored").expect("write");
        let store = Store::open(&dir.path().join("p.db")).expect("store");
        let ps = PolicyStore::open(pdir.clone(), store.clone(), vec![])
            .await
            .expect("open");
        assert!(ps.live().is_none());

        let v1 = match ps.reload().await.expect("valid") {
            ReloadOutcome::Updated(v) => v,
            other => panic!("{other:?}"),
        };
        assert_eq!(v1.counter, 1);
        assert_eq!(
            ps.reload().await.expect("same"),
            ReloadOutcome::Unchanged(v1)
        );

        std::fs::write(pdir.join("zz-broken.cedar"), BAD).expect("write");
        let err = ps.reload().await.unwrap_err();
        let d = err.diagnostics();
        assert_eq!(d[0].file, "zz-broken.cedar");
        assert_eq!(d[0].line, 2);
        assert!(d[0].message.contains("shoeSize"), "{}", d[0].message);
        assert_eq!(
            ps.live().expect("live").version,
            v1,
            "previous version stays live"
        );

        std::fs::remove_file(pdir.join("zz-broken.cedar")).expect("rm");
        std::fs::write(pdir.join("legal.cedar"), OK.replace("Sales", "Legal")).expect("write");
        let ReloadOutcome::Updated(v2) = ps.reload().await.expect("valid") else {
            panic!("expected update")
        };
        assert_eq!(v2.counter, 2);

        // A restart restores the live version from the store.
        let again = PolicyStore::open(pdir, store, vec![]).await.expect("open");
        assert_eq!(again.live().expect("restored").version, v2);
    }

    #[tokio::test]
    async fn declared_principal_attributes_are_validated_and_versioned() {
        use portcullis_shared::snapshot::{AttrKind, AttributeDecl};
        let dir = tempfile::tempdir().expect("tempdir");
        let pdir = dir.path().join("policies");
        std::fs::create_dir(&pdir).expect("mkdir");
        std::fs::write(
            pdir.join("clearance.cedar"),
            "permit(principal, action == Action::\"chat\", resource)\n  \
             when { principal has clearance && principal.clearance >= 3 };\n",
        )
        .expect("write");
        let store = Store::open(&dir.path().join("p.db")).expect("store");
        let clearance = vec![AttributeDecl::new("clearance", AttrKind::Long, false)];

        // Without the declaration the policy names an unknown attribute.
        let bare = PolicyStore::open(pdir.clone(), store.clone(), vec![])
            .await
            .expect("open");
        let err = bare.reload().await.unwrap_err();
        assert!(err.to_string().contains("impossible"), "{err}");

        let ps = PolicyStore::open(pdir.clone(), store.clone(), clearance.clone())
            .await
            .expect("open");
        let ReloadOutcome::Updated(v1) = ps.reload().await.expect("valid") else {
            panic!("expected update")
        };
        let live = ps.live().expect("live");
        assert_eq!(live.attributes, clearance);
        assert!(
            live.schema.contains("\"clearance\"?: Long"),
            "{}",
            live.schema
        );

        // A restart restores the declarations with the version; the same configuration keeps
        // the version, a changed one (the attribute is now a string) is re-validated.
        let again = PolicyStore::open(pdir.clone(), store.clone(), clearance.clone())
            .await
            .expect("open");
        assert_eq!(again.live().expect("restored").attributes, clearance);
        assert_eq!(
            again.reload().await.expect("same"),
            ReloadOutcome::Unchanged(v1)
        );
        let as_string = vec![AttributeDecl {
            kind: AttrKind::String,
            ..clearance[0].clone()
        }];
        let retyped = PolicyStore::open(pdir, store, as_string)
            .await
            .expect("open");
        assert!(
            retyped.reload().await.is_err(),
            "a String cannot be compared with >="
        );
        assert_eq!(retyped.live().expect("kept").attributes, clearance);
    }
}
