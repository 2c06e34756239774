//! `Idempotency-Key` records (DESIGN §5): the first request with a key claims it, later ones
//! replay the stored response or are refused when their body differs.

use serde::{Deserialize, Serialize};

use super::codec::{decode, encode, scoped};
use super::{Store, StoreError};
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
}

impl Store {
    pub fn idem_begin(
        &self,
        merchant: &MerchantId,
        key: &str,
        request_hash: [u8; 32],
        now: Millis,
    ) -> Result<IdemBegin, StoreError> {
        let k = scoped(merchant.as_str(), key);
        let fresh = encode(&IdemRecord {
            request_hash,
            state: IdemState::InProgress { started_at: now },
        })?;
        let t = &self.inner.idempotency;
        match t.compare_and_swap(&k, None as Option<&[u8]>, Some(fresh))? {
            Ok(()) => Ok(IdemBegin::Started),
            Err(cas) => {
                let cur: IdemRecord = decode(&cas.current.unwrap_or_default())?;
                if cur.request_hash != request_hash {
                    return Ok(IdemBegin::Mismatch);
                }
                Ok(match cur.state {
                    IdemState::Done(r) | IdemState::Completed { response: r, .. } => {
                        IdemBegin::Replay(r)
                    }
                    IdemState::InProgress { .. } => IdemBegin::InProgress,
                })
            }
        }
    }

    /// Stores the final response durably; later requests with the key replay it.
    pub async fn idem_complete(
        &self,
        merchant: &MerchantId,
        key: &str,
        request_hash: [u8; 32],
        response: StoredResponse,
        now: Millis,
    ) -> Result<(), StoreError> {
        let v = encode(&IdemRecord {
            request_hash,
            state: IdemState::Completed { at: now, response },
        })?;
        self.inner
            .idempotency
            .insert(scoped(merchant.as_str(), key), v)?;
        self.durable().await
    }

    /// Releases a key whose request failed in a retryable way (5xx), so a retry runs anew.
    pub fn idem_abort(&self, merchant: &MerchantId, key: &str) -> Result<(), StoreError> {
        self.inner
            .idempotency
            .remove(scoped(merchant.as_str(), key))?;
        Ok(())
    }

    /// At start-up: requests in progress when the process died were never answered, so
    /// their keys are released.
    pub fn idem_release_in_progress(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for kv in self.inner.idempotency.iter() {
            let (k, v) = kv?;
            if let Ok(IdemRecord {
                state: IdemState::InProgress { .. },
                ..
            }) = decode(&v)
            {
                self.inner.idempotency.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Removes answered keys completed before `before` (retention): a key is a client's
    /// retry window, not a record for ever, and every key is a stored answer body. Once
    /// removed, a retry with the key runs anew, and `merchant_order_no` /
    /// `merchant_refund_no` uniqueness still refuses a second order or refund. Keys still
    /// in progress are left alone. A full scan, of one retention period's keys.
    pub fn idem_purge(&self, before: Millis) -> Result<usize, StoreError> {
        let t = &self.inner.idempotency;
        let mut n = 0;
        for kv in t.iter() {
            let (k, v) = kv?;
            let expired = match decode::<IdemRecord>(&v).map(|r| r.state) {
                Ok(IdemState::Completed { at, .. }) => at < before,
                Ok(IdemState::Done(_)) => true,
                Ok(IdemState::InProgress { .. }) | Err(_) => false,
            };
            if expired
                && t.compare_and_swap(&k, Some(&v), None as Option<&[u8]>)?
                    .is_ok()
            {
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::temp_store;

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
        assert_eq!(s.idem_release_in_progress().unwrap(), 1);
        assert_eq!(
            s.idem_begin(&other, "k", [3; 32], 0).unwrap(),
            IdemBegin::Started
        );
    }

    #[tokio::test]
    async fn answered_keys_expire_and_then_run_anew() {
        let (_d, s) = temp_store();
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
