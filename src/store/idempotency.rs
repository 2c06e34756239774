//! `Idempotency-Key` records (docs/design.md §5): the first request with a key claims it, later ones
//! replay the stored response or are refused when their body differs.

use serde::{Deserialize, Serialize};

use super::cas::CasTree;
use super::codec::{decode, encode, scoped};
use super::{SledStore, StoreError};
use crate::domain::{MerchantId, Millis};

/// A response as sent, replayed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum IdemState {
    InProgress {
        started_at: Millis,
    },
    /// Written by earlier releases, without a completion time; expires at the first purge.
    Done(StoredResponse),
    /// A new variant (not a new field), so records of the layout above still decode.
    Completed {
        at: Millis,
        response: StoredResponse,
    },
    /// In progress, and about to create `resource` (an order or refund id). Written before
    /// that resource's own transaction, so whenever the resource is durable, so is this:
    /// a request cut off after creating it (a crash, the client gone) is answered with
    /// what it created, not run again into `merchant_order_no` uniqueness.
    Claimed {
        started_at: Millis,
        resource: String,
    },
    /// The request that claimed `resource` was never answered (cut off at `at`): the
    /// next request with the key answers from the resource as it now is.
    Unanswered {
        at: Millis,
        resource: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct IdemRecord {
    request_hash: [u8; 32],
    state: IdemState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdemBegin {
    /// This request owns the key: process it, then `idem_complete` or `idem_abort`.
    Started,
    /// Same key, same request, already answered.
    Replay(StoredResponse),
    /// Same key, another request: a client bug.
    Mismatch,
    /// Same key and request, still being processed by another request.
    InProgress,
    /// Same key and request; the first request created this resource (an order or refund
    /// id) but was never answered. Answer from it, or `idem_abort` and start again when it
    /// does not exist.
    Unanswered(String),
}

/// The state machine, on any [`CasTree`] (the sled tree or the postgres `kv` table).
///
/// `stale_before`: a key in progress (or claimed) that started at or before this time is
/// taken over, as the start-up release would do: its request is presumed dead (with
/// several nodes over one database, the node that held it died and no start-up of its own
/// will ever release it). `Millis::MIN` never takes a key over (one process per sled
/// directory: every key in progress is a request of this process, still running).
pub(super) fn begin(
    t: &dyn CasTree,
    merchant: &MerchantId,
    key: &str,
    request_hash: [u8; 32],
    now: Millis,
    stale_before: Millis,
) -> Result<IdemBegin, StoreError> {
    let k = scoped(merchant.as_str(), key);
    let fresh = encode(&IdemRecord {
        request_hash,
        state: IdemState::InProgress { started_at: now },
    })?;
    loop {
        if t.cas(&k, None, Some(&fresh))? {
            return Ok(IdemBegin::Started);
        }
        // Taken: read who holds it (gone again in between: try to take it again).
        let Some(raw) = t.get(&k)? else { continue };
        let cur: IdemRecord = decode(&raw)?;
        if cur.request_hash != request_hash {
            return Ok(IdemBegin::Mismatch);
        }
        return Ok(match cur.state {
            IdemState::Done(r) | IdemState::Completed { response: r, .. } => IdemBegin::Replay(r),
            // Never claimed a resource: nothing was created, this request runs anew. The
            // compare-and-swap lets one of several takers win; the others read again.
            IdemState::InProgress { started_at } if started_at <= stale_before => {
                if !t.cas(&k, Some(&raw), Some(&fresh))? {
                    continue;
                }
                IdemBegin::Started
            }
            // Claimed: the resource may exist, so the key becomes unanswered and this
            // request is answered from the resource (or runs anew when it does not exist).
            IdemState::Claimed {
                started_at,
                resource,
            } if started_at <= stale_before => {
                let rec = encode(&IdemRecord {
                    request_hash,
                    state: IdemState::Unanswered {
                        at: now,
                        resource: resource.clone(),
                    },
                })?;
                if !t.cas(&k, Some(&raw), Some(&rec))? {
                    continue;
                }
                IdemBegin::Unanswered(resource)
            }
            IdemState::InProgress { .. } | IdemState::Claimed { .. } => IdemBegin::InProgress,
            IdemState::Unanswered { resource, .. } => IdemBegin::Unanswered(resource),
        });
    }
}

/// The record of an answered key.
pub(super) fn completed_record(
    request_hash: [u8; 32],
    response: StoredResponse,
    now: Millis,
) -> Result<Vec<u8>, StoreError> {
    encode(&IdemRecord {
        request_hash,
        state: IdemState::Completed { at: now, response },
    })
}

/// Stores the final response; the caller makes it durable before answering.
pub(super) fn complete(
    t: &dyn CasTree,
    merchant: &MerchantId,
    key: &str,
    request_hash: [u8; 32],
    response: StoredResponse,
    now: Millis,
) -> Result<(), StoreError> {
    let v = completed_record(request_hash, response, now)?;
    t.insert(&scoped(merchant.as_str(), key), &v)
}

/// Records that the request holding `key` is about to create `resource` (see
/// [`IdemState::Claimed`]); a no-op unless the key is in progress.
pub(super) fn claim(
    t: &dyn CasTree,
    merchant: &MerchantId,
    key: &str,
    resource: &str,
) -> Result<(), StoreError> {
    let k = scoped(merchant.as_str(), key);
    let Some(cur) = t.get(&k)? else {
        return Ok(());
    };
    let rec: IdemRecord = decode(&cur)?;
    let IdemState::InProgress { started_at } = rec.state else {
        return Ok(());
    };
    let claimed = encode(&IdemRecord {
        request_hash: rec.request_hash,
        state: IdemState::Claimed {
            started_at,
            resource: resource.to_string(),
        },
    })?;
    t.cas(&k, Some(&cur), Some(&claimed))?;
    Ok(())
}

/// Releases a key whose request ended without an answer to keep: a claimed key is kept
/// as unanswered (its resource may exist), any other is removed so a retry runs anew.
pub(super) fn cut_off(
    t: &dyn CasTree,
    merchant: &MerchantId,
    key: &str,
    now: Millis,
) -> Result<(), StoreError> {
    let k = scoped(merchant.as_str(), key);
    if let Some(cur) = t.get(&k)? {
        let rec: IdemRecord = decode(&cur)?;
        let next = match rec.state {
            IdemState::Claimed { resource, .. } => Some(encode(&IdemRecord {
                request_hash: rec.request_hash,
                state: IdemState::Unanswered { at: now, resource },
            })?),
            IdemState::InProgress { .. } => None,
            _ => return Ok(()),
        };
        t.cas(&k, Some(&cur), next.as_deref())?;
    }
    Ok(())
}

/// Releases a key whose request failed in a retryable way (5xx), so a retry runs anew.
pub(super) fn abort(t: &dyn CasTree, merchant: &MerchantId, key: &str) -> Result<(), StoreError> {
    t.remove(&scoped(merchant.as_str(), key))
}

/// At start-up: requests in progress when the process died were never answered. Keys
/// that had claimed a resource become unanswered (the next request with the key
/// answers from that resource, if it was created); the others are released.
///
/// With several nodes over one database the keys in progress may belong to a live node,
/// so the postgres backend only releases keys older than a grace period (`older_than`).
pub(super) fn release_in_progress(
    t: &dyn CasTree,
    now: Millis,
    older_than: Millis,
) -> Result<usize, StoreError> {
    let mut n = 0;
    for (k, v) in t.scan_prefix(b"")? {
        match decode::<IdemRecord>(&v) {
            Ok(IdemRecord {
                state: IdemState::InProgress { started_at },
                ..
            }) if started_at <= older_than && t.cas(&k, Some(&v), None)? => {
                n += 1;
            }
            Ok(IdemRecord {
                request_hash,
                state:
                    IdemState::Claimed {
                        resource,
                        started_at,
                    },
            }) if started_at <= older_than => {
                let rec = encode(&IdemRecord {
                    request_hash,
                    state: IdemState::Unanswered { at: now, resource },
                })?;
                if t.cas(&k, Some(&v), Some(&rec))? {
                    n += 1;
                }
            }
            _ => {}
        }
    }
    Ok(n)
}

/// Removes answered keys completed before `before` (retention): a key is a client's
/// retry window, not a record for ever, and every key is a stored answer body. Once
/// removed, a retry with the key runs anew, and `merchant_order_no` /
/// `merchant_refund_no` uniqueness still refuses a second order or refund. Keys still
/// in progress are left alone. A full scan, of one retention period's keys.
pub(super) fn purge(t: &dyn CasTree, before: Millis) -> Result<usize, StoreError> {
    let mut n = 0;
    for (k, v) in t.scan_prefix(b"")? {
        let expired = match decode::<IdemRecord>(&v).map(|r| r.state) {
            Ok(IdemState::Completed { at, .. } | IdemState::Unanswered { at, .. }) => at < before,
            Ok(IdemState::Done(_)) => true,
            Ok(IdemState::InProgress { .. } | IdemState::Claimed { .. }) | Err(_) => false,
        };
        if expired && t.cas(&k, Some(&v), None)? {
            n += 1;
        }
    }
    Ok(n)
}

impl SledStore {
    pub fn idem_begin(
        &self,
        merchant: &MerchantId,
        key: &str,
        request_hash: [u8; 32],
        now: Millis,
    ) -> Result<IdemBegin, StoreError> {
        begin(
            &self.inner.idempotency,
            merchant,
            key,
            request_hash,
            now,
            Millis::MIN,
        )
    }

    pub async fn idem_complete(
        &self,
        merchant: &MerchantId,
        key: &str,
        request_hash: [u8; 32],
        response: StoredResponse,
        now: Millis,
    ) -> Result<(), StoreError> {
        complete(
            &self.inner.idempotency,
            merchant,
            key,
            request_hash,
            response,
            now,
        )?;
        self.durable().await
    }

    pub fn idem_claim(
        &self,
        merchant: &MerchantId,
        key: &str,
        resource: &str,
    ) -> Result<(), StoreError> {
        claim(&self.inner.idempotency, merchant, key, resource)
    }

    pub fn idem_cut_off(
        &self,
        merchant: &MerchantId,
        key: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        cut_off(&self.inner.idempotency, merchant, key, now)
    }

    pub fn idem_abort(&self, merchant: &MerchantId, key: &str) -> Result<(), StoreError> {
        abort(&self.inner.idempotency, merchant, key)
    }

    /// One process per sled directory: every key in progress was cut off by the last stop.
    pub fn idem_release_in_progress(&self, now: Millis) -> Result<usize, StoreError> {
        release_in_progress(&self.inner.idempotency, now, Millis::MAX)
    }

    pub fn idem_purge(&self, before: Millis) -> Result<usize, StoreError> {
        purge(&self.inner.idempotency, before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{temp_sled, test_store as temp_store};

    #[tokio::test]
    async fn claim_replay_mismatch() {
        let (_d, s) = temp_store();
        let m = MerchantId::parse("demo").unwrap();
        assert_eq!(
            s.idem_begin(&m, "k", [1; 32], 0).unwrap(),
            IdemBegin::Started
        );
        assert_eq!(
            s.idem_begin(&m, "k", [1; 32], 0).unwrap(),
            IdemBegin::InProgress
        );
        assert_eq!(
            s.idem_begin(&m, "k", [2; 32], 0).unwrap(),
            IdemBegin::Mismatch
        );
        let r = StoredResponse {
            status: 201,
            body: b"{}".to_vec(),
        };
        s.idem_complete(&m, "k", [1; 32], r.clone(), 10)
            .await
            .unwrap();
        assert_eq!(
            s.idem_begin(&m, "k", [1; 32], 0).unwrap(),
            IdemBegin::Replay(r)
        );
        let other = MerchantId::parse("other").unwrap();
        assert_eq!(
            s.idem_begin(&other, "k", [2; 32], 0).unwrap(),
            IdemBegin::Started
        );
        assert_eq!(s.idem_release_in_progress(0).unwrap(), 1);
        assert_eq!(
            s.idem_begin(&other, "k", [3; 32], 0).unwrap(),
            IdemBegin::Started
        );
    }

    #[tokio::test]
    async fn a_claimed_key_cut_off_answers_from_its_resource() {
        let (_d, s) = temp_store();
        let m = MerchantId::parse("demo").unwrap();
        for key in ["crashed", "dropped", "plain"] {
            assert_eq!(
                s.idem_begin(&m, key, [1; 32], 0).unwrap(),
                IdemBegin::Started
            );
        }
        s.idem_claim(&m, "crashed", "ord_A").unwrap();
        s.idem_claim(&m, "dropped", "ord_B").unwrap();
        assert_eq!(
            s.idem_begin(&m, "crashed", [1; 32], 0).unwrap(),
            IdemBegin::InProgress,
            "claimed is still in progress while its request runs"
        );
        // The client goes away: kept, as unanswered.
        s.idem_cut_off(&m, "dropped", 5).unwrap();
        assert_eq!(
            s.idem_begin(&m, "dropped", [1; 32], 6).unwrap(),
            IdemBegin::Unanswered("ord_B".into())
        );
        assert_eq!(
            s.idem_begin(&m, "dropped", [2; 32], 6).unwrap(),
            IdemBegin::Mismatch
        );
        // The process dies: at start, claimed keys become unanswered, the rest are freed.
        assert_eq!(s.idem_release_in_progress(10).unwrap(), 2);
        assert_eq!(
            s.idem_begin(&m, "crashed", [1; 32], 11).unwrap(),
            IdemBegin::Unanswered("ord_A".into())
        );
        assert_eq!(
            s.idem_begin(&m, "plain", [1; 32], 11).unwrap(),
            IdemBegin::Started
        );
        // Unanswered keys expire like answered ones.
        assert_eq!(s.idem_purge(11).unwrap(), 2);
        assert_eq!(
            s.idem_begin(&m, "crashed", [1; 32], 12).unwrap(),
            IdemBegin::Started
        );
    }

    /// A key whose request died with its node (postgres, several nodes): no start-up will
    /// release it, so the first request with it after the grace period takes it over. A
    /// key only in progress runs anew; a claimed one is answered from its resource; a
    /// younger key still reads in progress, and a different request is still refused.
    #[test]
    fn a_stale_key_in_progress_is_taken_over_at_begin() {
        let (_d, s) = temp_sled();
        let t = &s.inner.idempotency;
        let m = MerchantId::parse("demo").unwrap();
        for key in ["bare", "claimed", "young"] {
            assert_eq!(
                begin(t, &m, key, [1; 32], 100, Millis::MIN).unwrap(),
                IdemBegin::Started
            );
        }
        claim(t, &m, "claimed", "ord_A").unwrap();
        assert_eq!(
            begin(t, &m, "young", [1; 32], 150, 99).unwrap(),
            IdemBegin::InProgress,
            "younger than the grace period: still its first request's"
        );
        assert_eq!(
            begin(t, &m, "bare", [1; 32], 150, Millis::MIN).unwrap(),
            IdemBegin::InProgress,
            "without a grace period nothing is taken over"
        );
        assert_eq!(
            begin(t, &m, "bare", [2; 32], 1_000, 900).unwrap(),
            IdemBegin::Mismatch
        );
        assert_eq!(
            begin(t, &m, "bare", [1; 32], 1_000, 900).unwrap(),
            IdemBegin::Started
        );
        // Taken over: it is this request's now, started at 1000.
        assert_eq!(
            begin(t, &m, "bare", [1; 32], 1_001, 900).unwrap(),
            IdemBegin::InProgress
        );
        assert_eq!(
            begin(t, &m, "claimed", [1; 32], 1_000, 900).unwrap(),
            IdemBegin::Unanswered("ord_A".into())
        );
        // A second taker reads the key as the first left it.
        assert_eq!(
            begin(t, &m, "claimed", [1; 32], 1_002, 900).unwrap(),
            IdemBegin::Unanswered("ord_A".into())
        );
    }

    /// The postgres backend takes keys over after `release_in_progress_after_secs`, and
    /// with 0 (one node) never at begin.
    #[test]
    fn postgres_takes_over_keys_older_than_the_grace_period() {
        if crate::store::pg::testing::skipped_without_postgres() {
            return;
        }
        let db = crate::store::pg::testing::TestDatabase::create();
        let m = MerchantId::parse("demo").unwrap();
        let s = crate::store::pg::PgStore::open(&db.url, 2, 1_000).unwrap();
        assert_eq!(
            s.idem_begin(&m, "k", [1; 32], 10_000).unwrap(),
            IdemBegin::Started
        );
        s.idem_claim(&m, "k", "ord_A").unwrap();
        assert_eq!(
            s.idem_begin(&m, "k", [1; 32], 10_500).unwrap(),
            IdemBegin::InProgress
        );
        assert_eq!(
            s.idem_begin(&m, "k", [1; 32], 11_000).unwrap(),
            IdemBegin::Unanswered("ord_A".into())
        );
        let single = crate::store::pg::PgStore::open(&db.url, 2, 0).unwrap();
        assert_eq!(
            single.idem_begin(&m, "j", [1; 32], 10_000).unwrap(),
            IdemBegin::Started
        );
        assert_eq!(
            single.idem_begin(&m, "j", [1; 32], 99_000).unwrap(),
            IdemBegin::InProgress
        );
    }

    #[tokio::test]
    async fn answered_keys_expire_and_then_run_anew() {
        let (_d, s) = temp_sled();
        let m = MerchantId::parse("demo").unwrap();
        let r = StoredResponse {
            status: 201,
            body: b"{}".to_vec(),
        };
        for (key, at) in [("old", 100), ("new", 200)] {
            assert_eq!(
                s.idem_begin(&m, key, [1; 32], at).unwrap(),
                IdemBegin::Started
            );
            s.idem_complete(&m, key, [1; 32], r.clone(), at)
                .await
                .unwrap();
        }
        assert_eq!(
            s.idem_begin(&m, "busy", [1; 32], 0).unwrap(),
            IdemBegin::Started
        );
        // A record of the earlier layout (no completion time) still replays, then expires.
        let legacy = encode(&IdemRecord {
            request_hash: [1; 32],
            state: IdemState::Done(r.clone()),
        })
        .unwrap();
        s.inner
            .idempotency
            .insert(scoped("demo", "legacy"), legacy)
            .unwrap();
        assert_eq!(
            s.idem_begin(&m, "legacy", [1; 32], 0).unwrap(),
            IdemBegin::Replay(r.clone())
        );

        assert_eq!(s.idem_purge(150).unwrap(), 2, "old and legacy");
        assert_eq!(
            s.idem_begin(&m, "old", [2; 32], 300).unwrap(),
            IdemBegin::Started
        );
        assert_eq!(
            s.idem_begin(&m, "new", [1; 32], 300).unwrap(),
            IdemBegin::Replay(r)
        );
        assert_eq!(
            s.idem_begin(&m, "busy", [1; 32], 300).unwrap(),
            IdemBegin::InProgress
        );
    }
}
