//! A byte-keyed map with compare-and-swap: what idempotency records, risk counters, alerts,
//! anomaly acknowledgements and the simulators' state need from a backend. Their logic is
//! written once on this trait; sled trees and the postgres `kv` table implement it, so the
//! two backends cannot drift apart on the state machines themselves.

use super::StoreError;

/// Key-value pairs, in key order.
pub(crate) type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A read-modify-write step: the stored value (None: absent) to the new one (None: remove).
pub(crate) type Modify<'a> = dyn FnMut(Option<&[u8]>) -> Option<Vec<u8>> + 'a;

/// A key's value before and after an update.
pub(crate) type BeforeAfter = (Option<Vec<u8>>, Option<Vec<u8>>);

pub(crate) trait CasTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    fn remove(&self, key: &[u8]) -> Result<(), StoreError>;
    /// Sets `key` to `new` (None removes it) iff it holds `old` (None: absent); whether it
    /// did. Atomic against every other writer, in this process or another node.
    fn cas(&self, key: &[u8], old: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool, StoreError>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, StoreError>;

    /// Stores `value` under `key` only if `key` is absent and, when it did, `index_value`
    /// under `index_key` (a secondary index entry of the new record); whether it did. The
    /// default is two writes; a crash between them leaves a record without its index entry,
    /// which callers heal by writing the entry again on a repeat.
    fn insert_new_indexed(
        &self,
        key: &[u8],
        value: &[u8],
        index_key: &[u8],
        index_value: &[u8],
    ) -> Result<bool, StoreError> {
        let inserted = self.cas(key, None, Some(value))?;
        if inserted {
            self.insert(index_key, index_value)?;
        }
        Ok(inserted)
    }

    /// Read-modify-write of one key, retried until no one else wrote in between (`f` may
    /// run more than once). Returns what was stored before and after.
    fn update(&self, key: &[u8], f: &mut Modify<'_>) -> Result<BeforeAfter, StoreError> {
        loop {
            let old = self.get(key)?;
            let new = f(old.as_deref());
            if old == new || self.cas(key, old.as_deref(), new.as_deref())? {
                return Ok((old, new));
            }
        }
    }
}

impl CasTree for sled::Tree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(sled::Tree::get(self, key)?.map(|v| v.to_vec()))
    }

    fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        sled::Tree::insert(self, key, value)?;
        Ok(())
    }

    fn remove(&self, key: &[u8]) -> Result<(), StoreError> {
        sled::Tree::remove(self, key)?;
        Ok(())
    }

    fn cas(&self, key: &[u8], old: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool, StoreError> {
        Ok(self.compare_and_swap(key, old, new)?.is_ok())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, StoreError> {
        sled::Tree::scan_prefix(self, prefix)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_store;

    #[test]
    fn an_indexed_insert_writes_the_index_entry_only_for_a_new_record() {
        let (_guard, store) = test_store();
        let kv = store.kv_tree("cas_test").unwrap();
        assert!(kv
            .insert_new_indexed("t:1", &"first", "n:A", &"t:1")
            .unwrap());
        // A repeat (another index key, as a retried create with a fresh number) changes
        // nothing: neither the record nor a second index entry.
        assert!(!kv
            .insert_new_indexed("t:1", &"second", "n:B", &"t:1")
            .unwrap());
        assert_eq!(kv.get::<String>("t:1").unwrap().as_deref(), Some("first"));
        assert_eq!(kv.get::<String>("n:A").unwrap().as_deref(), Some("t:1"));
        assert_eq!(kv.get::<String>("n:B").unwrap(), None);
        // An index entry left by an earlier record is overwritten, as `put` would.
        assert!(kv
            .insert_new_indexed("t:2", &"other", "n:A", &"t:2")
            .unwrap());
        assert_eq!(kv.get::<String>("n:A").unwrap().as_deref(), Some("t:2"));
    }
}
