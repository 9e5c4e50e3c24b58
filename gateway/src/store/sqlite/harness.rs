//! What tests of the SQLite store share: a temporary folder per test, and the store suite's
//! [`Harness`] over a database file in it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;

use super::{SqliteOptions, SqliteStore};
use crate::store::suite::{Backend, Harness};

/// A folder of its own, removed when the test ends.
#[derive(Debug)]
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchyard-store-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// The database file in it.
    pub(crate) fn db(&self) -> PathBuf {
        self.0.join("store.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A SQLite store with the default options in a folder of its own, for the store suite.
#[derive(Debug)]
pub(crate) struct SqliteHarness {
    /// The store open now. Declared before `dir`, so it is dropped before the folder goes.
    store: Arc<SqliteStore>,
    /// Its folder.
    dir: TempDir,
}

impl SqliteHarness {
    /// A new, empty store.
    pub(crate) async fn open() -> Self {
        let dir = TempDir::new();
        let store = Arc::new(SqliteStore::open(&dir.db(), SqliteOptions::default()).unwrap());
        SqliteHarness { store, dir }
    }
}

impl Harness for SqliteHarness {
    fn store(&self) -> Arc<dyn Backend> {
        self.store.clone()
    }

    fn reopen(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.store.close().await.unwrap();
            let store = SqliteStore::open(&self.dir.db(), SqliteOptions::default()).unwrap();
            self.store = Arc::new(store);
        })
    }
}
