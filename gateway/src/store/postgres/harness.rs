//! What tests of the PostgreSQL store share: the test process's PostgreSQL cluster
//! ([`switchyard_tests::postgres`]) and the store suite's [`Harness`] over a fresh database in
//! it. Each test gets its own database (`CREATE DATABASE t_<n>`).

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{PostgresOptions, PostgresStore};
use crate::store::suite::{Backend, Harness};

/// A new database in the test process's cluster; its connection string.
pub(crate) async fn fresh_database() -> String {
    tokio::task::spawn_blocking(|| switchyard_tests::postgres::create_database("t"))
        .await
        .expect("create a test database")
        .unwrap_or_else(|e| panic!("cannot create a test database: {e}"))
}

pub(crate) fn test_options() -> PostgresOptions {
    PostgresOptions {
        pool_size: 4,
        ..PostgresOptions::default()
    }
}

/// A PostgreSQL store over a database of its own, for the store suite.
#[derive(Debug)]
pub(crate) struct PostgresHarness {
    /// The store open now.
    store: Arc<PostgresStore>,
    /// Its database.
    conninfo: String,
}

impl PostgresHarness {
    /// A new, empty store.
    pub(crate) async fn open() -> Self {
        let conninfo = fresh_database().await;
        let store = Arc::new(
            PostgresStore::open(&conninfo, test_options())
                .await
                .expect("open the PostgreSQL store"),
        );
        PostgresHarness { store, conninfo }
    }
}

impl Harness for PostgresHarness {
    fn store(&self) -> Arc<dyn Backend> {
        self.store.clone()
    }

    fn reopen(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.store.close().await.unwrap();
            let store = PostgresStore::open(&self.conninfo, test_options())
                .await
                .unwrap();
            self.store = Arc::new(store);
        })
    }
}
