//! [`CasTree`] on the `kv` table: one row per (tree, key). Compare-and-swap is one
//! conditional statement, so it is atomic against every node; inserting a key that must
//! not exist relies on the primary key.

use super::{cached, PgStore};
use crate::store::cas::CasTree;
use crate::store::StoreError;

#[derive(Clone)]
pub struct PgTree {
    store: PgStore,
    name: String,
}

impl PgTree {
    pub(super) fn new(store: PgStore, name: &str) -> PgTree {
        PgTree {
            store,
            name: name.to_string(),
        }
    }

    /// [`CasTree::get`] for async callers.
    pub(super) async fn get_async(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
        let name = self.name.clone();
        self.store
            .run(move |db| async move {
                let c = db.client().await?;
                let row = cached::query_opt(&c, GET, &[&name, &key])
                    .await
                    .map_err(|e| db.err(e))?;
                Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
            })
            .await
    }

    /// [`CasTree::insert`] for async callers.
    pub(super) async fn insert_async(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        let name = self.name.clone();
        self.store
            .run(move |db| async move {
                db.check_healthy()?;
                let c = db.client().await?;
                cached::execute(&c, UPSERT, &[&name, &key, &value])
                    .await
                    .map_err(|e| db.err(e))?;
                Ok(())
            })
            .await
    }
}

const GET: &str = "SELECT value FROM kv WHERE tree = $1 AND key = $2";

const UPSERT: &str = "INSERT INTO kv (tree, key, value) VALUES ($1, $2, $3) \
                      ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value";

/// The index entry is written only when the record was: the second insert reads the
/// first one's `RETURNING` rows, so it affects one row exactly when the record was new.
const INSERT_NEW_INDEXED: &str = "WITH new AS (\
     INSERT INTO kv (tree, key, value) VALUES ($1, $2, $3) \
     ON CONFLICT (tree, key) DO NOTHING RETURNING tree) \
     INSERT INTO kv (tree, key, value) SELECT tree, $4, $5 FROM new \
     ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value";

/// The smallest key greater than every key starting with `prefix`; None when there is
/// none (the prefix is all 0xff, or empty).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl CasTree for PgTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let (name, key) = (self.name.clone(), key.to_vec());
        self.store.block(move |db| async move {
            let c = db.client().await?;
            let row = cached::query_opt(&c, GET, &[&name, &key])
                .await
                .map_err(|e| db.err(e))?;
            Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
        })
    }

    fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let (name, key, value) = (self.name.clone(), key.to_vec(), value.to_vec());
        self.store.block(move |db| async move {
            db.check_healthy()?;
            let c = db.client().await?;
            cached::execute(&c, UPSERT, &[&name, &key, &value])
                .await
                .map_err(|e| db.err(e))?;
            Ok(())
        })
    }

    fn remove(&self, key: &[u8]) -> Result<(), StoreError> {
        let (name, key) = (self.name.clone(), key.to_vec());
        self.store.block(move |db| async move {
            db.check_healthy()?;
            let c = db.client().await?;
            cached::execute(
                &c,
                "DELETE FROM kv WHERE tree = $1 AND key = $2",
                &[&name, &key],
            )
            .await
            .map_err(|e| db.err(e))?;
            Ok(())
        })
    }

    fn cas(&self, key: &[u8], old: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool, StoreError> {
        let (name, key) = (self.name.clone(), key.to_vec());
        let (old, new) = (old.map(<[u8]>::to_vec), new.map(<[u8]>::to_vec));
        self.store.block(move |db| async move {
            db.check_healthy()?;
            let c = db.client().await?;
            let n = match (old, new) {
                (None, Some(new)) => {
                    cached::execute(
                        &c,
                        "INSERT INTO kv (tree, key, value) VALUES ($1, $2, $3) \
                         ON CONFLICT (tree, key) DO NOTHING",
                        &[&name, &key, &new],
                    )
                    .await
                }
                (Some(old), Some(new)) => {
                    cached::execute(
                        &c,
                        "UPDATE kv SET value = $4 WHERE tree = $1 AND key = $2 AND value = $3",
                        &[&name, &key, &old, &new],
                    )
                    .await
                }
                (Some(old), None) => {
                    cached::execute(
                        &c,
                        "DELETE FROM kv WHERE tree = $1 AND key = $2 AND value = $3",
                        &[&name, &key, &old],
                    )
                    .await
                }
                (None, None) => cached::query_opt(
                    &c,
                    "SELECT 1 FROM kv WHERE tree = $1 AND key = $2",
                    &[&name, &key],
                )
                .await
                .map(|r| u64::from(r.is_none())),
            }
            .map_err(|e| db.err(e))?;
            Ok(n == 1)
        })
    }

    /// One statement, so one round trip and one commit, and never a record without its
    /// index entry.
    fn insert_new_indexed(
        &self,
        key: &[u8],
        value: &[u8],
        index_key: &[u8],
        index_value: &[u8],
    ) -> Result<bool, StoreError> {
        let name = self.name.clone();
        let (key, value) = (key.to_vec(), value.to_vec());
        let (index_key, index_value) = (index_key.to_vec(), index_value.to_vec());
        self.store.block(move |db| async move {
            db.check_healthy()?;
            let c = db.client().await?;
            let n = cached::execute(
                &c,
                INSERT_NEW_INDEXED,
                &[&name, &key, &value, &index_key, &index_value],
            )
            .await
            .map_err(|e| db.err(e))?;
            Ok(n == 1)
        })
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<crate::store::cas::Entries, StoreError> {
        let (name, lo, hi) = (self.name.clone(), prefix.to_vec(), prefix_end(prefix));
        self.store.block(move |db| async move {
            let c = db.client().await?;
            let rows = match hi {
                Some(hi) => {
                    cached::query(
                        &c,
                        "SELECT key, value FROM kv WHERE tree = $1 AND key >= $2 AND key < $3 \
                         ORDER BY key",
                        &[&name, &lo, &hi],
                    )
                    .await
                }
                None => {
                    cached::query(
                        &c,
                        "SELECT key, value FROM kv WHERE tree = $1 AND key >= $2 ORDER BY key",
                        &[&name, &lo],
                    )
                    .await
                }
            }
            .map_err(|e| db.err(e))?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends_sort_after_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
