//! The SQLite store against the store contract: two handles on one database file, as
//! the CLI and `serve` (or two processes) hold them.

use std::sync::Arc;

use dupify_store::conformance::Pair;
use dupify_store::SqliteStore;

async fn sqlite() -> (tempfile::TempDir, Pair) {
    let dir = tempfile::tempdir().unwrap();
    let a = SqliteStore::open(dir.path()).unwrap();
    let b = SqliteStore::open(dir.path()).unwrap();
    let pair = Pair {
        a: Arc::new(a),
        b: Arc::new(b),
    };
    (dir, pair)
}

dupify_store::store_conformance!(sqlite());
