//! Claiming's shell (see [`crate::claim`]): a controller's pass first adopts
//! the orphans its selector matches and releases what it no longer matches,
//! each a merge patch of `ownerReferences` at the resourceVersion read; a
//! pass that wrote any ends there, and the key comes back once its cache
//! shows the writes (expectations), so the pods it counts are the ones it
//! controls.

use super::*;
use crate::api::set_metadata_list;
use crate::cache::BY_ORPHAN;
use crate::claim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};

/// Who claims: the controller's metadata, its reference and its selector.
pub(super) struct Claimant<'o> {
    pub meta: &'o ObjectMeta,
    pub owner_ref: OwnerReference,
    pub selector: Option<&'o LabelSelector>,
    /// The expectations key of the controller's work loop (`rs:ns/name`).
    pub tag: &'o str,
}

impl Plane<'_> {
    /// The objects of `cache` (kind `plural`) that `who` controls, after
    /// claiming; `Err(ok)` when adoptions or releases were written instead
    /// (the pass ends; `ok` false when one failed, for a retry with back-off).
    pub(super) async fn claimed<K>(
        &self,
        cache: &Cache<K>,
        plural: &str,
        who: Claimant<'_>,
        adoptable: impl Fn(&K) -> bool,
    ) -> Result<Vec<Arc<K>>, bool>
    where
        K: Metadata<Ty = ObjectMeta>,
    {
        let uid = who.meta.uid.as_deref().unwrap_or_default();
        let ns = who.meta.namespace.as_deref().unwrap_or_default();
        let mut candidates = cache.by_index(BY_OWNER, uid);
        candidates.extend(cache.by_index(BY_ORPHAN, ns));
        let c = claim::claim(who.meta, who.selector, candidates, adoptable);
        if !c.changes() {
            return Ok(c.owned);
        }
        if !self.api.is_leader() {
            return Err(true);
        }
        let owner = format!("{}/{}", who.owner_ref.kind, who.owner_ref.name);
        let mut writes = Vec::new();
        for (obj, adopt) in c
            .adopt
            .iter()
            .map(|o| (o, true))
            .chain(c.release.iter().map(|o| (o, false)))
        {
            let m = obj.metadata();
            let refs = if adopt {
                claim::adopted(m, who.owner_ref.clone())
            } else {
                claim::released(m, uid)
            };
            let name = m.name.as_deref().unwrap_or_default();
            tracing::info!(
                %owner,
                object = %format!("{plural}/{ns}/{name}"),
                "{}",
                if adopt { "adopting an orphan its selector matches" } else { "releasing an object its selector no longer matches" }
            );
            writes.push(set_metadata_list(
                plural,
                m.namespace.as_deref(),
                name,
                m.resource_version.as_deref().unwrap_or_default(),
                "ownerReferences",
                &refs,
            ));
        }
        let results = self.write_all(writes).await;
        self.expect_revision(
            who.tag,
            results.iter().map(|w| w.revision).max().unwrap_or(0),
        );
        for w in results.iter().filter(|w| !w.ok() && w.code != 404) {
            tracing::warn!(%owner, code = w.code, message = %w.message, "claiming failed; retried");
        }
        Err(results.iter().all(|w| w.ok() || w.code == 404))
    }
}
